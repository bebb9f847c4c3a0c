"""moto's server, with the fixes our templates need in moto 5.2.5. Each fix names the bug it works around.

python scripts/moto_server.py -H 127.0.0.1 -p PORT    (same arguments as moto_server)
"""

from __future__ import annotations

from typing import Any

from moto.kms.models import Key
from moto.server import main

_create_key_from_cloudformation = Key.create_from_cloudformation_json.__func__  # type: ignore[attr-defined]


def _key_with_kms_style_tags(
    cls: type[Key], resource_name: str, cloudformation_json: Any, *args: Any, **kwargs: Any
) -> Key:
    # AWS::KMS::Key spells tags Key/Value; moto hands them to its KMS tagger, which wants TagKey/TagValue
    # and fails the whole stack with KeyError: 'TagKey'.
    properties = cloudformation_json.get("Properties", {})
    tags = [{"TagKey": tag["Key"], "TagValue": tag["Value"]} for tag in properties.get("Tags", [])]
    fixed = {**cloudformation_json, "Properties": {**properties, "Tags": tags}}
    return _create_key_from_cloudformation(cls, resource_name, fixed, *args, **kwargs)  # type: ignore[no-any-return]


Key.create_from_cloudformation_json = classmethod(_key_with_kms_style_tags)  # type: ignore[assignment,method-assign]

if __name__ == "__main__":
    main()
