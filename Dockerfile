# The streams image: the CLI, the workers and the NER model. No Kafka inside.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY streams ./streams
COPY schemas ./schemas
COPY topics.yaml budgets.yaml* escalations.yaml* detectors.yaml* ./
RUN pip install --no-cache-dir '.[ner]'
# State lives in Kafka changelogs; nothing is written to local disk that matters.
ENV STREAMS_STORE=memory:// STREAMS_WEB_HOST=0.0.0.0 \
    STREAMS_TOPICS_FILE=/app/topics.yaml STREAMS_SCHEMAS_DIR=/app/schemas
USER 65534
ENTRYPOINT ["streams"]
CMD ["worker"]
