FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
COPY streams ./streams
COPY models ./models
COPY monitoring ./monitoring
RUN pip install --no-cache-dir -c constraints.txt . && useradd --create-home driftline
USER driftline
ENV DRIFTLINE_REGISTRY=/registry
CMD ["driftline", "--help"]
