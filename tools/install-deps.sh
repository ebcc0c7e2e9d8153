#!/usr/bin/env bash
# Installs what the build, the tests and the page need on a fresh Debian machine.
# Idempotent: does nothing when everything is present.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
pkgs=(build-essential clang libclang-rt-14-dev libstb-dev emscripten nodejs chromium
      python3-torch python3-torchvision python3-numpy python3-pil python3-matplotlib
      python3-sklearn python3-scipy libopenblas0-pthread brotli libjpeg-turbo-progs
      clang-19)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# npm: Debian's package, unless nodejs already bundles it (NodeSource's nodejs does, and then
# conflicts with Debian's npm package).
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# npm packages (playwright-core, onnxruntime-web, axe-core, the FHIR R4 JSON schema), pinned by tools/package-lock.json
# (again whenever the lock file is newer than what npm last installed)
if [ -f tools/package-lock.json ] && { [ ! -f tools/node_modules/.package-lock.json ] ||
     [ tools/package-lock.json -nt tools/node_modules/.package-lock.json ]; }; then
  (cd tools && npm ci --no-audit --no-fund --loglevel=error)
fi
