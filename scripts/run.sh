#!/usr/bin/env bash
# `make run`: the whole system locally. Not built yet: it arrives with the first
# end-to-end flow (gateway, seeds, dev tokens). Say so rather than start half a system.
echo "make run is not implemented yet: it comes with the first end-to-end flow (issue 4)." >&2
echo "Today each service runs on its own: make build && ./bin/occupations (see README.md)." >&2
exit 1
