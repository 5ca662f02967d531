#!/bin/bash
set -euo pipefail
echo "running as $(id -un):$(id -gn) in $PWD"
grep '^environment' /etc/svc/app.conf
stat -c '%U:%G %a %n' /opt/svc/bin/run.sh /opt/svc/bin/lib.sh /etc/svc/app.conf /var/log/svc /opt/svc
source /opt/svc/bin/lib.sh
greet
