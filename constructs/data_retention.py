"""What happens to resources that hold data (keys, log groups, buckets) when their stack lets go of them."""

from __future__ import annotations

from aws_cdk import RemovalPolicy

# Kept when the stack is deleted or the resource replaced: records outlive the stack. But removed when
# the resource's own first create rolls back (CloudFormation's RetainExceptOnCreate): a plain Retain would
# leave a named bucket or log group behind, and the retry would fail with "already exists".
KEEP_DATA = RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE
