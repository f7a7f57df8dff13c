FROM python:3.11-slim
WORKDIR /app
# OpenCV (pulled in by the OCR package, rapidocr-onnxruntime) links libGL and GLib, which the slim image lacks.
RUN apt-get update && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml README.md ./
COPY api api
COPY workers workers
COPY shared shared
COPY docs/kb docs/kb
RUN pip install --no-cache-dir .
EXPOSE 8000 5555
# Idle keep-alive connections outlive clients' and proxies' idle timeouts (API_KEEPALIVE_S, docs/operations.md).
ENV API_KEEPALIVE_S=75
CMD ["sh", "-c", "exec uvicorn api.main:app --host 0.0.0.0 --port 8000 --timeout-keep-alive \"$API_KEEPALIVE_S\""]
