# ARIA bot: one CPU image for the bot, the workers and the CLI (`aria` is the entry point).
#   docker build -t aria-bot .
#   docker run --rm -v aria-models:/models aria-bot models pull
#   docker run --rm -v aria-models:/models aria-bot worker --redis redis://redis:6379/0
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    ARIA_MODELS_DIR=/models \
    ARIA_DATA_DIR=/data

# The synthesizer and the General MIDI SoundFont (FluidR3_GM) the renderer prefers.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libfluidsynth3 fluid-soundfont-gm \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app

# PyTorch's CPU build first, so the neural extra's range installs nothing more; then the
# project with the core, bot and neural extras.
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0
COPY pyproject.toml README.md ./
COPY aria_engine ./aria_engine
COPY bot ./bot
COPY adapters ./adapters
RUN pip install ".[all]"

# Never run as root. Weights live in a volume (pull them once with `aria models pull`);
# the bot keeps its SQLite store in another.
RUN useradd --create-home --uid 10001 aria \
    && mkdir -p /models /data \
    && chown aria:aria /models /data
USER aria
VOLUME ["/models", "/data"]

# /metrics and /healthz when started with --metrics-port 9100.
EXPOSE 9100
ENTRYPOINT ["aria"]
CMD ["--help"]
