#!/bin/bash
# Tells CloudFormation whether this instance serves: SUCCESS once the gateway answers 200 on /healthz
# here, FAILURE if it has not within the bounded wait. The group's CreationPolicy and rolling update
# wait for these signals, so a create or an update completes only when its instances are healthy.
#   signal-when-healthy.sh --stack NAME --resource LOGICAL_ID --region REGION [--role ROLE]
#                          [--url URL] [--wait SECONDS] [--interval SECONDS]
# Exits 0 when the gateway is healthy (even if CloudFormation refused the signal, as it does for an
# instance a scale-out launched outside any create or update), non-zero otherwise.
set -uo pipefail
# aws-cfn-bootstrap installs cfn-signal here on Amazon Linux; anything earlier on PATH wins (tests).
PATH="$PATH:/opt/aws/bin"

url=http://127.0.0.1:8080/healthz
wait_seconds=300
interval=5
stack="" resource="" region="" role=""
while [ $# -gt 0 ]; do
  case "$1" in
    --stack) stack=$2 ;;
    --resource) resource=$2 ;;
    --region) region=$2 ;;
    --role) role=$2 ;;
    --url) url=$2 ;;
    --wait) wait_seconds=$2 ;;
    --interval) interval=$2 ;;
    *) echo "signal-when-healthy: unknown option $1" >&2; exit 2 ;;
  esac
  shift 2
done
if [ -z "$stack" ] || [ -z "$resource" ] || [ -z "$region" ]; then
  echo "signal-when-healthy: --stack, --resource and --region are required" >&2
  exit 2
fi

healthy=false
deadline=$((SECONDS + wait_seconds))
while :; do
  status=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$url")
  if [ "$status" = 200 ]; then
    healthy=true
    break
  fi
  if [ "$SECONDS" -ge "$deadline" ]; then
    echo "signal-when-healthy: $url answered ${status:-nothing} for ${wait_seconds}s, signalling FAILURE" >&2
    break
  fi
  sleep "$interval"
done

credentials=()
[ -n "$role" ] && credentials=(--role "$role")
if ! cfn-signal --success "$healthy" --stack "$stack" --resource "$resource" --region "$region" "${credentials[@]}"; then
  echo "signal-when-healthy: cfn-signal failed (expected for an instance launched outside a stack create or update)" >&2
fi
[ "$healthy" = true ]
