# Flowline's application image: one image for the API, the worker and the migration step
# (docker-compose.yml picks the command). Build: docker build -t flowline .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first, so that a code change does not reinstall them.
COPY requirements.lock ./
RUN pip install --no-cache-dir -r requirements.lock

COPY alembic.ini pyproject.toml worker.py cli.py ./
COPY flowline/ ./flowline/
COPY workflows/ ./workflows/
COPY launch/ ./launch/
COPY services/ ./services/
COPY activities/ ./activities/
COPY api/ ./api/
COPY commands/ ./commands/
COPY simulation/ ./simulation/
COPY console/ ./console/
# Compile while still root: the running user cannot write __pycache__ under /app.
RUN python -m compileall -q /app

RUN useradd --system --uid 10001 --user-group --create-home --home-dir /home/flowline flowline
USER flowline

EXPOSE 8000
CMD ["python", "worker.py"]
