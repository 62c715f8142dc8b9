#!/bin/sh
# Install a private Python 2.7 (Debian bullseye's packages, unpacked with dpkg -x, nothing
# installed system-wide) and the Autobahn|Testsuite (wstest) for it, into conformance/.cache/.
#
# The suite only runs on Python 2.7, which Debian 12 no longer ships.  Idempotent: a finished
# install is detected by the stamp file and reused.
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${CONFORMANCE_CACHE:-$HERE/.cache}
ROOT=$CACHE/py27
STAMP=$CACHE/.installed
SUITE_VERSION=25.10.1
PIP_WHEEL=pip-20.3.4-py2.py3-none-any.whl

if [ -f "$STAMP" ] && [ -x "$CACHE/bin/wstest" ]; then
    exit 0
fi

mkdir -p "$CACHE/apt/lists/partial" "$CACHE/apt/cache/archives/partial" "$CACHE/debs" "$ROOT" \
    "$CACHE/bin"
echo "deb http://deb.debian.org/debian bullseye main" >"$CACHE/apt/sources.list"
: >"$CACHE/apt/status"

# A private apt: its own source list, lists, cache and (empty) status; the system's is untouched.
APT="-o Dir::Etc::sourcelist=$CACHE/apt/sources.list -o Dir::Etc::sourceparts=-
 -o Dir::State::Lists=$CACHE/apt/lists -o Dir::Cache=$CACHE/apt/cache
 -o Dir::State::status=$CACHE/apt/status -o Debug::NoLocking=1
 -o APT::Get::List-Cleanup=0 -o APT::Sandbox::User=root"

echo "conformance: fetching the bullseye package lists (private)"
# shellcheck disable=SC2086
apt-get $APT -qq update

# Python 2.7 and the libraries bookworm no longer has (libssl1.1, libffi7); the rest
# (zlib, expat, readline, sqlite, ncurses, bz2, db5.3, gdbm) is bookworm's own.
PACKAGES="python2.7 python2.7-minimal libpython2.7 libpython2.7-minimal libpython2.7-stdlib
 python2.7-dev libpython2.7-dev libssl1.1 libffi7"
echo "conformance: downloading $PACKAGES"
cd "$CACHE/debs"
# shellcheck disable=SC2086
apt-get $APT -qq download $PACKAGES
for deb in "$CACHE"/debs/*.deb; do
    dpkg -x "$deb" "$ROOT"
done

# A wrapper that runs the unpacked interpreter with its own libraries and prefix.
cat >"$CACHE/bin/python2.7" <<EOF
#!/bin/sh
export LD_LIBRARY_PATH="$ROOT/usr/lib/x86_64-linux-gnu:$ROOT/lib/x86_64-linux-gnu\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
export PYTHONHOME="$ROOT/usr"
export PYTHONNOUSERSITE=1
exec "$ROOT/usr/bin/python2.7" "\$@"
EOF
chmod +x "$CACHE/bin/python2.7"
# pip --prefix installs into site-packages, which Debian's interpreter does not search: make
# it a site directory (so that namespace-package .pth files, e.g. zope's, are honoured too).
mkdir -p "$ROOT/usr/lib/python2.7/dist-packages"
echo "import site; site.addsitedir('$ROOT/usr/lib/python2.7/site-packages')" \
    >"$ROOT/usr/lib/python2.7/dist-packages/conformance-site.pth"
"$CACHE/bin/python2.7" -c 'import ssl, zlib, ctypes, hashlib; print("python " + __import__("sys").version.split()[0] + ", " + ssl.OPENSSL_VERSION)'

# pip 20.3.4 (the last for Python 2) runs straight from its wheel.
if [ ! -f "$CACHE/$PIP_WHEEL" ]; then
    "$HERE/../.venv/bin/python" -m pip download --quiet --no-deps --only-binary=:all: \
        --python-version 2.7 -d "$CACHE" "pip==20.3.4"
fi
# It cannot build PEP 517 sdists from inside the zip, so it first installs itself.
"$CACHE/bin/python2.7" "$CACHE/$PIP_WHEEL/pip" install --quiet --disable-pip-version-check \
    --no-warn-script-location --prefix "$ROOT/usr" "$CACHE/$PIP_WHEEL"
PIP="$CACHE/bin/python2.7 -m pip"
export CFLAGS="-I$ROOT/usr/include -I$ROOT/usr/include/python2.7 -I$ROOT/usr/include/x86_64-linux-gnu/python2.7"
export LDFLAGS="-L$ROOT/usr/lib/x86_64-linux-gnu"
echo "conformance: installing autobahntestsuite $SUITE_VERSION for Python 2.7"
# shellcheck disable=SC2086
$PIP install --quiet --disable-pip-version-check --no-warn-script-location \
    --prefix "$ROOT/usr" "setuptools==44.0.0" "wheel==0.37.1"
# shellcheck disable=SC2086
$PIP install --quiet --disable-pip-version-check --no-warn-script-location \
    --prefix "$ROOT/usr" "autobahntestsuite==$SUITE_VERSION"

cat >"$CACHE/bin/wstest" <<EOF
#!/bin/sh
exec "$CACHE/bin/python2.7" -c 'import sys; from autobahntestsuite.wstest import run; sys.argv[0] = "wstest"; sys.exit(run())' "\$@"
EOF
chmod +x "$CACHE/bin/wstest"
"$CACHE/bin/wstest" --help >/dev/null
touch "$STAMP"
echo "conformance: wstest ready in $CACHE/bin"
