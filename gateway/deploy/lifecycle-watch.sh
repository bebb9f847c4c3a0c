#!/bin/bash
# Drains this instance when its Auto Scaling group terminates it: waits (via IMDSv2) until the group
# marks it for termination, stops the gateway's workers gracefully (no new requests, open streams finish, the
# audit file is flushed), gives the CloudWatch agent time to ship the last lines, then lets the
# termination continue. The group's lifecycle hook holds the instance until then.
set -uo pipefail
imds=http://169.254.169.254/latest
token() { curl -sf -X PUT "$imds/api/token" -H "X-aws-ec2-metadata-token-ttl-seconds: 300"; }
meta() { curl -sf -H "X-aws-ec2-metadata-token: $(token)" "$imds/meta-data/$1"; }

until [ "$(meta autoscaling/target-lifecycle-state)" = "Terminated" ]; do sleep 5; done
# Every worker, each draining its own streams; systemctl returns once all have stopped.
systemctl stop aigw-gateway.target 'aigw-gateway@*.service'
sleep "${AIGW_AGENT_FLUSH_SECONDS:-15}"
aws autoscaling complete-lifecycle-action --lifecycle-action-result CONTINUE \
  --lifecycle-hook-name "${AIGW_LIFECYCLE_HOOK:-aigw-drain}" \
  --auto-scaling-group-name "$(meta tags/instance/aws:autoscaling:groupName)" \
  --instance-id "$(meta instance-id)"
