"""A CycloneDX 1.5 SBOM of what the registry-resolver binary links: every
crate reached from it through normal (not dev, not build) dependencies on
x86_64 Linux, with the versions and checksums Cargo.lock pins.

    python3 scripts/sbom.py VERSION REVISION CREATED > sbom.cdx.json

Read from `cargo metadata --locked`, so it is exactly the lock file's
resolution; deterministic (sorted, no random serial), like the image.
"""
import hashlib
import json
import subprocess
import sys
import tomllib
import uuid

version, revision, created = sys.argv[1:4]
metadata = json.loads(
    subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--locked",
         "--filter-platform", "x86_64-unknown-linux-gnu"],
        check=True, capture_output=True, text=True,
    ).stdout
)
packages = {p["id"]: p for p in metadata["packages"]}
nodes = {n["id"]: n for n in metadata["resolve"]["nodes"]}
root = next(p["id"] for p in metadata["packages"] if p["name"] == "registry-resolver")

# Checksums from Cargo.lock, by name and version.
with open("Cargo.lock", "rb") as lock:
    checksums = {
        (p["name"], p["version"]): p["checksum"]
        for p in tomllib.load(lock)["package"]
        if "checksum" in p
    }

reached, stack, edges = set(), [root], {}
while stack:
    current = stack.pop()
    if current in reached:
        continue
    reached.add(current)
    normal = [
        dep["pkg"] for dep in nodes[current]["deps"]
        if any(kind["kind"] is None for kind in dep["dep_kinds"])
    ]
    edges[current] = sorted(set(normal))
    stack.extend(normal)


def ref(package_id):
    p = packages[package_id]
    return f"pkg:cargo/{p['name']}@{p['version']}"


components = []
for package_id in sorted(reached - {root}, key=ref):
    p = packages[package_id]
    component = {
        "type": "library",
        "bom-ref": ref(package_id),
        "name": p["name"],
        "version": p["version"],
        "purl": ref(package_id),
    }
    if p.get("license"):
        component["licenses"] = [{"expression": p["license"]}]
    checksum = checksums.get((p["name"], p["version"]))
    if checksum:
        component["hashes"] = [{"alg": "SHA-256", "content": checksum}]
    components.append(component)

bom = {
    "bomFormat": "CycloneDX",
    "specVersion": "1.5",
    "serialNumber": "urn:uuid:"
    + str(uuid.UUID(hashlib.sha256(f"{version}{revision}".encode()).hexdigest()[:32])),
    "version": 1,
    "metadata": {
        "timestamp": created,
        "component": {
            "type": "application",
            "bom-ref": ref(root),
            "name": "registry-resolver",
            "version": version,
            "purl": ref(root),
            "properties": [{"name": "vcs:revision", "value": revision}],
        },
    },
    "components": components,
    "dependencies": [
        {"ref": ref(package_id), "dependsOn": [ref(d) for d in edges[package_id]]}
        for package_id in sorted(reached, key=ref)
    ],
}
json.dump(bom, sys.stdout, indent=2, sort_keys=True)
sys.stdout.write("\n")
