#!/bin/sh
# /usr/bin/scope: runs the program installed under /usr/lib/scope with the
# system's Node.js (Debian's nodejs package).
exec /usr/bin/node /usr/lib/scope/dist/src/cli/main.js "$@"
