FROM python:3.12-slim

WORKDIR /app
COPY pyproject.toml README.md LICENSE ./
COPY src ./src
RUN pip install --no-cache-dir ".[server]"

# Ground truth is served during an episode only to requests carrying this token; unset, nobody gets it.
ENV INCIDENTIQ_ADMIN_TOKEN=""
EXPOSE 7860
CMD ["incidentiq", "serve", "--host", "0.0.0.0", "--port", "7860"]
