#!/bin/sh
# The Debian packages the test suite drives for real: redis-server (the fleet tests) and chromium
# (the browser tests). Installed with apt when missing; nothing is downloaded from anywhere else.
set -eu
missing=""
command -v redis-server >/dev/null 2>&1 || missing="$missing redis-server"
[ -x /usr/bin/chromium ] || missing="$missing chromium"
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -eq 0 ]; then apt_get="apt-get"; elif command -v sudo >/dev/null 2>&1; then apt_get="sudo apt-get"; else
  echo "The tests need these Debian packages:$missing. Install them with apt-get (as root) and run again." >&2
  exit 1
fi
echo "Installing Debian packages for the tests:$missing"
$apt_get update -qq
DEBIAN_FRONTEND=noninteractive $apt_get install -y -qq --no-install-recommends $missing >/dev/null
