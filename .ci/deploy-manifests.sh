#!/usr/bin/env bash
# Checks the deploy manifests with tools nobody here wrote:
#   - kubectl kustomize deploy/k8s, validated by kubernetes-validate --strict (PyPI);
#   - docker compose config on deploy/compose.yaml (skipped without a compose tool).
# A deliberately broken copy of each is also checked and must be refused, so a validator
# that passes everything is noticed. Installs kubernetes-validate into a venv under target/.
set -euo pipefail
cd "$(dirname "$0")/.."

KV_VERSION=1.37.0
tools=target/ci-tools
mkdir -p "$tools"
if [ ! -x "$tools/venv/bin/kubernetes-validate" ]; then
  python3 -m venv "$tools/venv"
  "$tools/venv/bin/pip" install --quiet --disable-pip-version-check "kubernetes-validate==$KV_VERSION"
fi
if ! command -v kubectl >/dev/null 2>&1; then
  apt-get update -qq && apt-get install -y -qq kubectl
fi

rendered="$tools/k8s.yaml"
kubectl kustomize deploy/k8s > "$rendered"
"$tools/venv/bin/kubernetes-validate" --strict --quiet "$rendered"
echo "deploy/k8s: $(grep -c '^kind:' "$rendered") resources valid (kubernetes-validate $KV_VERSION, strict)"
# Negative control: an unknown field in the StatefulSet's spec.
sed 's/^  serviceName:/  serviceNme:/' "$rendered" > "$tools/k8s-broken.yaml"
if cmp -s "$rendered" "$tools/k8s-broken.yaml"; then
  echo "negative control did not change the manifest (no serviceName line?)" >&2; exit 1
fi
if "$tools/venv/bin/kubernetes-validate" --strict --quiet "$tools/k8s-broken.yaml" >/dev/null 2>&1; then
  echo "kubernetes-validate accepted a StatefulSet with an unknown field" >&2; exit 1
fi

if docker compose version >/dev/null 2>&1; then
  compose=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then
  compose=(docker-compose)
else
  echo "deploy/compose.yaml: SKIP: no compose tool"; exit 0
fi
export COLONY_CLUSTER_SECRET=ci-only-not-a-secret COLONY_ADMIN_TOKEN=ci-only-not-a-token
"${compose[@]}" -f deploy/compose.yaml config --quiet
echo "deploy/compose.yaml: valid (${compose[*]} config)"
sed 's/^  image:/  imagee:/' deploy/compose.yaml > "$tools/compose-broken.yaml"
if "${compose[@]}" -f "$tools/compose-broken.yaml" config --quiet >/dev/null 2>&1; then
  echo "${compose[*]} config accepted a service with an unknown key" >&2; exit 1
fi
