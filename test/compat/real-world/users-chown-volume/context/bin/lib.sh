# shellcheck shell=bash
greet() { echo "svc ready"; }
