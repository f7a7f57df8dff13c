FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY api api
COPY workers workers
COPY shared shared
COPY docs/kb docs/kb
RUN pip install --no-cache-dir .
EXPOSE 8000 5555
