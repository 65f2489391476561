#!/usr/bin/env bash
# The GPU worker path, end to end on a CUDA machine: the quick demo (real chat messages -> Slack
# export -> import on the `default` worker -> training on the `gpu` worker -> a batch generated on
# the `gpu` worker), through the same services and Celery tasks as the site, on SQLite with the
# file broker (no Redis, no PostgreSQL), then what the rows say about where the work ran.
#
#   benchmarks/gpu_worker.sh OUT_DIR      # python3 must have the project's requirements
#
# Used with the device tool (benchmarks/RESULTS.md, "GPU"); CI has no GPU and never runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:?usage: benchmarks/gpu_worker.sh OUT_DIR}"
mkdir -p "$out"
export DEBUG=1 PYTHONUNBUFFERED=1 JOE_DATA_DIR="${JOE_DATA_DIR:-$(mktemp -d)}"
py="${PYTHON:-python3}"
$py -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name())"
$py manage.py migrate --noinput -v 0
$py manage.py ensure_admin
$py -m celery -A joe_site worker -Q default -c 1 -n default@%h --loglevel INFO >"$out/worker-default.log" 2>&1 &
default=$!
$py -m celery -A joe_site worker -Q gpu -c 1 -n gpu@%h --loglevel INFO >"$out/worker-gpu.log" 2>&1 &
gpu=$!
trap 'kill $default $gpu 2>/dev/null || true' EXIT
$py manage.py load_demo --quick --timeout 240 2>&1 | tee "$out/demo.log"
$py manage.py shell -c '
import json
from generations.models import GenerationBatch
from trainer.models import TrainingRun
run = TrainingRun.objects.get(name__startswith="Demo")
batch = GenerationBatch.objects.get(run=run)
print(json.dumps({
    "run": {"status": run.status, "device": run.device, "tokens_per_second": run.tokens_per_second,
            "perplexity": run.perplexity, "steps": run.progress_done},
    "batch": {"status": batch.status, "stats": batch.stats,
              "snippets": [s.text for s in batch.snippets.all()[:5]]},
}, indent=1, default=str))
' | tee "$out/rows.json"
