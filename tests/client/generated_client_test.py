"""A client generated from the served OpenAPI document (openapi-python-client)
lists, creates, updates, patches and deletes a record against the real server.

Run by tests/api.rs, which starts the server, generates the client package
into a temporary directory and passes: <package dir> <base url> <ca file> <token>.
"""
import importlib
import sys

package_dir, base_url, ca_file, token = sys.argv[1:5]
sys.path.insert(0, package_dir)
client_module = importlib.import_module("generated")
from generated.api.registries import create, delete, get, list_, patch, replace  # noqa: E402
from generated.models import (  # noqa: E402
    RegistryInput,
    RegistryPatch,
    RegistryReplacement,
    SortBy,
    SortOrder,
)

client = client_module.AuthenticatedClient(base_url=base_url, token=token, verify_ssl=ca_file)


def check(response, status):
    assert response.status_code == status, (response.status_code, response.content)
    return response.parsed


# Create (saved without the registry check: nothing is listening there).
created = check(create.sync_detailed(client=client, verify=False, body=RegistryInput(
    name="generated", server="registry.example.com:5000", namespaces=["team-a", "team-b"],
    default_for=["team-b"])), 201)
assert created.server == "https://registry.example.com:5000", created.server
assert created.has_password is False

# List, paged, in a generated enum's order.
for i in range(3):
    check(create.sync_detailed(client=client, verify=False, body=RegistryInput(
        name=f"extra-{i}", server=f"extra-{i}.example.com", namespaces=["team-c"])), 201)
first = check(list_.sync_detailed(client=client, limit=2, sort=SortBy.NAME, order=SortOrder.DESC), 200)
assert [r.name for r in first.items] == ["generated", "extra-2"], [r.name for r in first.items]
assert first.metadata.remaining_item_count == 2
rest = check(list_.sync_detailed(client=client, limit=2, sort=SortBy.NAME, order=SortOrder.DESC,
                                 continue_=first.metadata.continue_), 200)
assert [r.name for r in rest.items] == ["extra-1", "extra-0"], [r.name for r in rest.items]

# Replace, then patch, then read back.
replaced = check(replace.sync_detailed("generated", client=client, verify=False, body=RegistryReplacement(
    server="registry.example.com:5000", namespaces=["team-a"], description="replaced")), 200)
assert replaced.namespaces == ["team-a"] and replaced.default_for == []
patched = check(patch.sync_detailed("generated", client=client, verify=False,
                                    body=RegistryPatch(description="patched")), 200)
assert patched.description == "patched" and patched.namespaces == ["team-a"]
assert check(get.sync_detailed("generated", client=client), 200).description == "patched"

# Errors come back as the typed envelope.
missing = check(get.sync_detailed("no-such-registry", client=client), 404)
assert missing.error.code == "not_found", missing.error

# Delete.
check(delete.sync_detailed("generated", client=client), 204)
check(get.sync_detailed("generated", client=client), 404)
print("generated client: list, create, replace, patch, delete all worked")
