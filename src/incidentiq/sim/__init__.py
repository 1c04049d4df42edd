"""The simulated world: catalog, fault families, generator, dynamics. No Gymnasium here."""
