# One image for every role; EXTRAS=train adds torch/transformers/trl for GPU workers.
FROM python:3.11-slim
ARG EXTRAS=""
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 SMILEY_DATA_DIR=/data
WORKDIR /app
COPY . /app
RUN pip install --no-cache-dir -e ".${EXTRAS:+[$EXTRAS]}" \
    && useradd --create-home --uid 1000 smiley && mkdir -p /data && chown smiley /data
USER smiley
EXPOSE 8000
CMD ["smiley", "web", "--host", "0.0.0.0", "--port", "8000"]
