"""Every console flow in Debian's Chromium, driven by Playwright.

Run by tests/console.rs against the real server binary and a real
Distribution registry; the environment says where they are. Fails on any
assertion, any console error or uncaught exception, and any serious or
critical accessibility violation (axe-core). Saves the screenshots the
README shows.
"""

import json
import os
import re
import ssl
import subprocess
import sys
import tempfile
import urllib.request

from playwright.sync_api import expect, sync_playwright

# A loaded CI machine is slower than a laptop: wait longer before failing.
expect.set_options(timeout=15_000)

URL = os.environ["CONSOLE_URL"]
TOKEN = os.environ["CONSOLE_TOKEN"]
REGISTRY = os.environ["REGISTRY_HOST"]
USER = os.environ["REGISTRY_USER"]
PASSWORD = os.environ["REGISTRY_PASSWORD"]
SHOTS = os.environ["SCREENSHOT_DIR"]
AXE = os.environ["AXE_JS"]
CONTEXT = ssl.create_default_context(cafile=os.environ["CONSOLE_CA"])

problems = []


def api(method, path, body=None):
    """The API directly, for setup and for checking what the console did."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{URL}/api/v1{path}", data=data, method=method)
    request.add_header("Authorization", f"Bearer {TOKEN}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, context=CONTEXT) as response:
            text = response.read()
            return response.status, json.loads(text) if text else None
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def shot(page, name, full_page=True):
    # A dialog scrolled to what it says is taken as the screen shows it: a
    # full-page capture lays the page out again around it.
    page.screenshot(path=os.path.join(SHOTS, f"{name}.png"), full_page=full_page)


def axe_scan(page, where):
    page.add_script_tag(path=AXE)
    result = page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
        ".filter(v => v.impact === 'serious' || v.impact === 'critical')"
        ".map(v => v.id + ': ' + v.help + ' [' + v.nodes.map(n => n.target.join(' ')).slice(0, 3).join(', ') + ']')"
    )
    for violation in result:
        problems.append(f"accessibility ({where}): {violation}")


# Chromium logs every non-2xx fetch as a console error, though the page
# expects them (a wrong token is a 401, a failed check a 422) and shows
# them in words. Those are network log lines, not script errors; anything
# else logged as an error fails the run.
EXPECTED_NETWORK = re.compile(r"^Failed to load resource: the server responded with a status of (401|403|404|409|412|422|502)")


def watch(page):
    def on_console(message):
        if message.type == "error" and not EXPECTED_NETWORK.match(message.text):
            problems.append(f"console error: {message.text}")
    page.on("console", on_console)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))


def sign_in(page, token=TOKEN):
    page.get_by_label("API token").fill(token)
    page.get_by_role("button", name="Sign in").click()


def open_create_dialog(page):
    page.get_by_role("button", name="Add registry").first.click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    return dialog


def fill_registry(dialog, name, host, scheme="http", password=PASSWORD, namespaces=("team-a", "team-b"), default=("team-a",)):
    dialog.get_by_label("Name", exact=True).fill(name)
    dialog.get_by_label("Scheme").select_option(scheme)
    dialog.locator("#server-host").fill(host)
    dialog.get_by_label("Username").fill(USER)
    dialog.get_by_label("Password").fill(password)
    ns = dialog.get_by_label("Authorized namespaces")
    for value in namespaces:
        ns.fill(value)
        ns.press("Enter")
    for value in default:
        dialog.get_by_role("checkbox", name=value, exact=True).check()


def main():
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        )
        context = browser.new_context(ignore_https_errors=True, bypass_csp=True, locale="en-US",
                                      viewport={"width": 1280, "height": 860})
        page = context.new_page()
        watch(page)
        try:
            flows(page)
        except Exception:
            page.screenshot(path=os.path.join(os.environ.get("FAILURE_DIR", "/tmp"), "console-failure.png"), full_page=True)
            print("at", page.url, "\n", page.locator("body").inner_text()[:2000])
            raise
        browser.close()

    if problems:
        print("\n".join(problems))
        sys.exit(1)
    print("all console flows passed")


def applyable(manifest, secret_command):
    """What the workload page hands over works as given: the manifest is a
    valid Deployment (Kubernetes' schema), `kubectl apply --dry-run=client`
    takes it (against the in-memory API server, KUBECONFIG), and the pull
    Secret's command makes the Secret once the password is filled in."""
    path = os.path.join(tempfile.mkdtemp(), "mysql.yaml")
    with open(path, "w") as file:
        file.write(manifest)
    for check in (
        [sys.executable, "-m", "kubernetes_validate", "--strict", "-k", "1.32.0", path],
        # The schema is kubernetes-validate's to check (the in-memory API
        # server serves no OpenAPI document): kubectl reads the file, maps
        # it to a resource by discovery and finds it new.
        ["kubectl", "apply", "--dry-run=client", "--validate=false", "-n", "team-a", "-f", path],
        ["bash", "-c", secret_command.replace("<password of harbor>", "'a password'") + " --dry-run=client -o yaml"],
    ):
        done = subprocess.run(check, capture_output=True, text=True)
        assert done.returncode == 0, f"{check}: {done.stdout}{done.stderr}"
        if check[:2] == ["kubectl", "apply"]:
            assert done.stdout.strip() == "deployment.apps/mysql created (dry run)", done.stdout


def flows(page):
    if True:

        # --- Sign in: redirect, a wrong token, the right one.
        page.goto(URL + "/")
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        expect(page.get_by_text("admin-token")).to_be_visible()
        shot(page, "signin")
        axe_scan(page, "sign-in")
        sign_in(page, "not-the-token")
        expect(page.get_by_text("This token was not accepted.")).to_be_visible()
        sign_in(page)
        expect(page.get_by_role("heading", name="No registries yet")).to_be_visible()
        shot(page, "registries-empty")

        # --- Create: a passing check, failures in words, then save.
        dialog = open_create_dialog(page)
        fill_registry(dialog, "harbor", REGISTRY)
        dialog.get_by_role("button", name="Check").click()
        expect(dialog.get_by_text("The registry accepted this address and login.")).to_be_visible()
        shot(page, "create-dialog")
        axe_scan(page, "create dialog")
        # Keyboard: Tab never reaches the page behind the open (modal)
        # dialog. Past the last control the browser's own toolbar may take
        # focus (the document then reports <body>); the next Tab comes back.
        inside = 0
        for _ in range(40):
            page.keyboard.press("Tab")
            where = page.evaluate("document.activeElement === document.body ? 'browser' : "
                                  "document.activeElement.closest('dialog') ? 'dialog' : 'page'")
            assert where != "page", "focus reached the page behind the dialog"
            inside += where == "dialog"
        assert inside >= 35, f"focus was in the dialog for only {inside} of 40 Tabs"

        failures = [
            ("https", REGISTRY, PASSWORD, "Wrong scheme for this port"),
            ("http", REGISTRY, "wrong-password", "rejected the username or password"),
            ("http", "127.0.0.1:1", PASSWORD, "cannot be reached"),
            ("http", "169.254.169.254", PASSWORD, "does not send requests to that address"),
        ]
        for scheme, host, password, words in failures:
            dialog.get_by_label("Scheme").select_option(scheme)
            dialog.locator("#server-host").fill(host)
            dialog.get_by_label("Password").fill(password)
            dialog.get_by_role("button", name="Check").click()
            expect(dialog.get_by_role("status").filter(has_text=words)).to_be_visible()
        # A pasted URL is split: its scheme into the menu, the rest into
        # the address (the menu said https; the URL says http).
        dialog.get_by_label("Scheme").select_option("https")
        dialog.locator("#server-host").fill(f"http://{REGISTRY}/")
        expect(dialog.get_by_label("Scheme")).to_have_value("http")
        expect(dialog.locator("#server-host")).to_have_value(REGISTRY)
        # A 422 puts its message by the field; what was typed stays.
        dialog.get_by_label("Scheme").select_option("http")
        dialog.locator("#server-host").fill(REGISTRY)
        dialog.get_by_label("Password").fill(PASSWORD)
        dialog.get_by_label("Name", exact=True).fill("Bad_Name")
        dialog.get_by_role("button", name="Save").click()
        expect(dialog.locator(".field-error").first).to_contain_text("DNS-1123")
        expect(dialog.get_by_label("Name", exact=True)).to_have_attribute("aria-invalid", "true")
        expect(dialog.locator("#server-host")).to_have_value(REGISTRY)
        dialog.get_by_label("Name", exact=True).fill("harbor")
        dialog.get_by_role("button", name="Save").click()
        expect(page.get_by_role("heading", name="harbor", exact=True)).to_be_visible()
        expect(page.locator(".chip-ok").first).to_contain_text("Verified")

        # --- Detail: plain-HTTP warning, repositories and tags newest first.
        expect(page.get_by_text("Nodes pull over plain HTTP only if")).to_be_visible()
        repos = page.locator(".repo-list")
        expect(repos).to_contain_text("library/nginx")
        expect(page.get_by_text("Listed with: The registry's catalog")).to_be_visible()
        page.get_by_label("Filter repositories").fill("nginx")
        expect(repos.locator("li")).to_have_count(1)
        repos.get_by_role("button", name="library/nginx").click()
        tags = page.locator(".tag-list li")
        expect(tags).to_have_count(3)
        expect(tags.nth(0)).to_contain_text("latest")
        expect(tags.nth(1)).to_contain_text("1.27.0")
        expect(tags.nth(2)).to_contain_text("1.25.5")
        page.get_by_role("button", name="Check again").click()
        expect(page.get_by_text("The registry accepted this address and login.")).to_be_visible()
        shot(page, "registry-detail")
        axe_scan(page, "detail")

        # --- A registry that does not list: a path field, tags still listed.
        status, _ = api("POST", "/registries?verify=false",
                        {"name": "quiet", "server": f"http://{REGISTRY}", "username": USER, "password": PASSWORD,
                         "namespaces": ["team-a"], "browse": "none"})
        assert status == 201, status
        page.goto(URL + "/#/registries/quiet")
        expect(page.get_by_text("does not let this account list repositories")).to_be_visible()
        page.get_by_label("Repository path").fill("/library/nginx")
        page.get_by_role("button", name="List tags").click()
        expect(page.locator(".tag-list li")).to_have_count(3)
        expect(page.get_by_text("None: type paths, tags are listed")).to_be_visible()
        shot(page, "registry-no-listing")
        # How to use it: a command that works as shown. "quiet" is the
        # default nowhere (team-a's is harbor), so the short form would get
        # harbor's address: the hint names quiet by annotation instead.
        use = page.locator("section[aria-labelledby=sec-use]")
        hint = use.locator("pre").first
        expect(hint).to_contain_text("registry-resolver.io/registry=quiet")
        # The command works as shown: kubectl makes the annotated
        # Deployment from it (all but the last step, which needs a cluster).
        command = hint.inner_text().split("\\\n  | kubectl apply")[0].replace("\\\n", "")
        made = subprocess.run(["bash", "-c", command], capture_output=True, text=True)
        assert made.returncode == 0, made.stderr
        assert "registry-resolver.io/registry: quiet" in made.stdout and "image: /mysql/mysql:5.6" in made.stdout, made.stdout
        api("DELETE", "/registries/quiet")
        page.goto(URL + "/#/registries/harbor")
        expect(page.get_by_role("heading", name="harbor", exact=True)).to_be_visible()
        expect(use).to_contain_text("in team-a, where this registry is the default")
        # Plain HTTP: the server says the nodes need configuring, and the
        # page says how.
        expect(page.get_by_text("Nodes pull over plain HTTP only if")).to_be_visible()
        expect(use.locator("pre").first).to_have_text("kubectl create deployment mysql --image=/mysql/mysql:5.6 -n team-a")

        # --- Edit keeps the password; a new server asks for it first.
        page.get_by_role("button", name="Edit").click()
        dialog = page.get_by_role("dialog")
        dialog.get_by_label("Description").fill("Harbor of team A")
        dialog.get_by_role("button", name="Save").click()
        expect(page.get_by_text("Harbor of team A")).to_be_visible()
        status, record = api("GET", "/registries/harbor")
        assert status == 200 and record["hasPassword"] and record["status"]["verified"], record
        page.get_by_role("button", name="Edit").click()
        dialog = page.get_by_role("dialog")
        dialog.locator("#server-host").fill("127.0.0.1:1")
        # Said as it is typed (the server's dry run), before any Save.
        expect(dialog.get_by_text("enter the password again")).to_be_visible()
        shot(page, "edit-dialog-password-again")
        dialog.get_by_role("button", name="Save").click()
        expect(dialog.get_by_text("enter the password again")).to_be_visible()
        page.keyboard.press("Escape")
        expect(page.get_by_role("dialog")).to_have_count(0)
        status, record = api("GET", "/registries/harbor")
        assert record["server"] == f"http://{REGISTRY}", record
        # A new TLS trust setting asks for the password too.
        page.get_by_role("button", name="Edit").click()
        dialog = page.get_by_role("dialog")
        dialog.get_by_text("TLS, pull secret and pinning").click()
        dialog.get_by_label("Skip certificate verification").check()
        dialog.get_by_role("button", name="Save").click()
        expect(dialog.get_by_text("enter the password again")).to_be_visible()
        page.keyboard.press("Escape")
        expect(page.get_by_role("dialog")).to_have_count(0)

        # --- An error that names a field is said at that field, and the
        # cursor goes there: team-a's default is harbor's already.
        page.goto(URL + "/#/registries")
        dialog = open_create_dialog(page)
        fill_registry(dialog, "second", REGISTRY, namespaces=("team-a",), default=("team-a",))
        dialog.get_by_label("Save without checking").check()
        dialog.get_by_role("button", name="Save").click()
        default_field = dialog.locator("fieldset[data-field=defaultFor]")
        expect(default_field.locator(".field-error")).to_contain_text("team-a")
        expect(default_field.get_by_role("checkbox", name="team-a", exact=True)).to_be_focused()
        page.keyboard.press("Escape")

        # --- Live validation: what the server would refuse is said at the
        # field being typed in, before Save; untouched fields stay quiet;
        # fixing it clears it; nothing is saved by asking.
        dialog = open_create_dialog(page)
        name_field = dialog.locator("[data-field=name]")
        dialog.get_by_label("Name", exact=True).fill("Bad_Name")
        expect(name_field.locator(".field-error")).to_be_visible()
        expect(dialog.get_by_label("Name", exact=True)).to_have_attribute("aria-invalid", "true")
        expect(dialog.locator("[data-field=server] .field-error")).to_be_hidden()
        shot(page, "create-dialog-live-error")
        dialog.get_by_label("Name", exact=True).fill("good-name")
        expect(name_field.locator(".field-error")).to_be_hidden()
        page.keyboard.press("Escape")
        status, _ = api("GET", "/registries/good-name")
        assert status == 404, status
        page.goto(URL + "/#/registries/harbor")
        expect(page.get_by_role("heading", name="harbor", exact=True)).to_be_visible()

        # --- Someone else saves while the dialog is open: saving would undo
        # their change, so the console says so and offers a fresh copy.
        page.get_by_role("button", name="Edit").click()
        dialog = page.get_by_role("dialog")
        dialog.get_by_label("Description").fill("my edit")
        status, _ = api("PATCH", "/registries/harbor?verify=false", {"description": "their edit"})
        assert status == 200, status
        dialog.get_by_role("button", name="Save").click()
        expect(dialog.get_by_text("Someone changed this registry after you opened it")).to_be_visible()
        reload = dialog.get_by_role("button", name="Reload the registry")
        expect(reload).to_be_focused()
        shot(page, "edit-changed-meanwhile")
        status, record = api("GET", "/registries/harbor")
        assert record["description"] == "their edit", record
        reload.click()
        dialog = page.get_by_role("dialog")
        expect(dialog.get_by_label("Description")).to_have_value("their edit")
        dialog.get_by_label("Description").fill("Harbor of team A")
        dialog.get_by_role("button", name="Save").click()
        expect(page.get_by_role("dialog")).to_have_count(0)
        status, record = api("GET", "/registries/harbor")
        assert record["description"] == "Harbor of team A" and record["hasPassword"], record

        # --- List: many records, search, sort, paging, multi-select delete.
        for i in range(45):
            status, _ = api("POST", "/registries?verify=false",
                            {"name": f"mirror-{i:02d}", "server": f"mirror-{i:02d}.example.com",
                             "namespaces": ["team-c"]})
            assert status == 201, status
        page.get_by_role("link", name="Registries", exact=True).click()
        rows = page.locator("tbody tr")
        expect(rows).to_have_count(20)
        expect(page.get_by_text("1–20 of 46")).to_be_visible()
        shot(page, "registries")
        axe_scan(page, "list")
        # The server pages: the list asks for one page, never every record.
        listed_urls = []
        page.on("request", lambda r: listed_urls.append(r.url) if "/api/v1/registries?" in r.url else None)
        page.get_by_role("button", name="Next").click()
        expect(page.get_by_text("21–40 of 46")).to_be_visible()
        assert listed_urls and all("limit=20" in u for u in listed_urls), listed_urls
        assert "continue=" in listed_urls[-1], listed_urls
        page.get_by_role("button", name="Next").click()
        expect(page.get_by_text("41–46 of 46")).to_be_visible()
        expect(page.get_by_role("button", name="Next")).to_be_disabled()
        page.get_by_role("button", name="Previous").click()
        expect(page.get_by_text("21–40 of 46")).to_be_visible()
        expect(rows.first).to_contain_text("mirror-19")
        page.get_by_label("Search registries").fill("mirror-1")
        expect(page.get_by_text("1–10 of 10")).to_be_visible()
        name_header = page.get_by_role("button", name="Name", exact=True)
        name_header.click()  # sorted by name already: now descending
        expect(rows.first).to_contain_text("mirror-19")
        expect(page.locator("th[aria-sort=descending]")).to_have_count(1)
        page.get_by_label("Select mirror-19").check()
        page.get_by_label("Select mirror-18").check()
        page.get_by_role("button", name="Delete (2)").click()
        confirm = page.get_by_role("dialog")
        expect(confirm.locator(".names li")).to_have_text(["mirror-18", "mirror-19"])
        confirm.get_by_role("button", name="Delete").click()
        expect(page.get_by_text("Deleted: mirror-18, mirror-19.")).to_be_visible()
        status, listed = api("GET", "/registries")
        names = [r["name"] for r in listed["items"]]
        assert "mirror-18" not in names and "mirror-19" not in names and len(names) == 44, names

        # --- Workload form: picker, live preview, denial, manifest.
        # Without a namespace in the link it starts in one the server knows
        # (not in "default", where nothing is authorized), and offers them.
        page.goto(URL + "/#/workload")
        expect(page.get_by_label("Namespace", exact=True)).to_have_value("team-a")
        expect(page.locator("datalist option[value=team-b]")).to_have_count(1)
        expect(page.get_by_text("Default here: harbor")).to_be_visible()
        # A registry whose last check failed is offered after healthy ones,
        # marked, and choosing it warns.
        status, _ = api("POST", "/registries?verify=false",
                        {"name": "a-broken", "server": "http://127.0.0.1:1", "namespaces": ["team-a"]})
        assert status == 201, status
        status, answer = api("POST", "/registries/a-broken/verify")
        assert status == 422 and answer["error"]["code"] == "unreachable", (status, answer)
        status, checked = api("GET", "/registries/a-broken")
        assert not checked["status"]["verified"] and checked["status"]["lastVerifiedAt"], checked
        page.goto(URL + "/#/workload?namespace=team-a")
        picker = page.get_by_label("Registry", exact=True)
        options = picker.locator("option")
        expect(options.last).to_contain_text("a-broken")
        expect(options.last).to_contain_text("last check failed")
        expect(options.nth(1)).to_contain_text("harbor")
        picker.select_option("a-broken")
        expect(page.get_by_text("The last check of a-broken failed")).to_be_visible()
        picker.select_option("")
        expect(page.get_by_text("The last check of a-broken failed")).to_have_count(0)
        api("DELETE", "/registries/a-broken")
        page.goto(URL + "/#/workload?namespace=team-a")
        expect(page.get_by_label("Registry", exact=True)).to_contain_text("Namespace default (harbor)")
        # The server says why that one is the default here.
        expect(page.get_by_text("Default here: harbor, which names team-a in its defaults.")).to_be_visible()
        image = page.get_by_label("Image (registry-relative)")
        # The server says what is registry-relative: a full name is used as
        # written.
        image.fill("docker.io/library/nginx:1.27.0")
        expect(page.get_by_text("Not registry-relative: the image is used as written.")).to_be_visible()
        image.fill("/library/nginx:1.27.0")
        expect(page.locator(".preview.ok")).to_contain_text(f"{REGISTRY}/library/nginx:1.27.0")
        expect(page.locator(".preview.ok")).to_contain_text("harbor")
        # Without the webhook in the cluster (the embedded store), the page
        # ends with what can be applied as it is: the manifest resolved by
        # the server, the pull Secret's command with all but the password.
        manifest = page.locator(".manifest")
        expect(manifest).to_contain_text(f'image: "{REGISTRY}/library/nginx:1.27.0"')
        expect(manifest).to_contain_text("imagePullSecrets")
        expect(manifest).to_contain_text("secretKeyRef")
        commands = page.locator(".commands")
        secret_command = (f"kubectl create secret docker-registry harbor -n team-a --docker-server={REGISTRY} "
                          f"--docker-username={USER} --docker-password=<password of harbor>")
        expect(commands).to_contain_text(secret_command)
        expect(commands).to_contain_text("kubectl apply -n team-a -f mysql.yaml")
        applyable(manifest.inner_text(), secret_command)
        # What is not a port or a quantity is said at its field and left
        # out of the manifest, never dropped without a word.
        ports = page.get_by_label("Container ports").first
        ports.fill("3306, http")
        expect(page.get_by_text("Not a port (1 to 65535), left out: http")).to_be_visible()
        expect(ports).to_have_attribute("aria-invalid", "true")
        expect(manifest).to_contain_text("containerPort: 3306")
        page.get_by_text("Resources (advanced)").first.click()
        cpu = page.get_by_label("CPU request").first
        cpu.fill("lots")
        expect(page.get_by_text("Not a quantity such as 250m, 1.5 or 512Mi, left out: lots")).to_be_visible()
        expect(manifest).not_to_contain_text("lots")
        cpu.fill("250m")
        expect(manifest).to_contain_text('cpu: "250m"')
        ports.fill("3306")
        expect(ports).not_to_have_attribute("aria-invalid", "true")
        page.evaluate("window.scrollTo(0, 0)")
        page.get_by_role("button", name="Browse").click()
        # The panel opens in view, with the cursor in its filter.
        expect(page.locator(".repo-list")).to_be_in_viewport()
        expect(page.get_by_label("Filter repositories")).to_be_focused()
        page.locator(".repo-list").get_by_role("button", name="library/redis").click()
        page.locator(".tag-list").get_by_role("button", name="7.2").click()
        expect(image).to_have_value("/library/redis:7.2")
        expect(manifest).to_contain_text(f'image: "{REGISTRY}/library/redis:7.2"')
        shot(page, "workload")
        axe_scan(page, "workload")
        ns = page.get_by_label("Namespace", exact=True)
        # Not a namespace name: one message, at the field; nothing else
        # fails meanwhile.
        ns.fill("Team_A")
        expect(page.locator(".field-error").filter(has_text="DNS-1123")).to_have_count(1)
        expect(ns).to_have_attribute("aria-invalid", "true")
        expect(page.get_by_text("Choose a namespace to see the manifest.")).to_be_visible()
        expect(page.locator(".alert-error, .preview.bad")).to_have_count(0)
        ns.fill("team-z")
        expect(page.get_by_text("No registry is authorized for team-z.")).to_be_visible()
        expect(page.locator(".preview.bad")).to_contain_text("no registry is authorized in namespace")

        # --- Mirrors: a record that mirrors Docker Hub, typed in the dialog
        # (the server says what is wrong with an entry, at the entry), shown
        # on its page, and used by the workload page's preview and manifest.
        page.goto(URL + "/#/registries")
        dialog = open_create_dialog(page)
        fill_registry(dialog, "hub", REGISTRY, namespaces=("team-a",), default=())
        dialog.get_by_text("Mirrors of public registries").click()
        dialog.get_by_role("button", name="Add a mirrored registry").click()
        expect(dialog.get_by_label("Mirrored registry", exact=True)).to_be_focused()
        dialog.get_by_label("Mirrored registry", exact=True).fill("index.docker.io")
        prefix = dialog.get_by_label("Project or path here")
        prefix.fill("Proxy")
        mirror_error = dialog.locator("[data-field=mirrorOf] .field-error")
        expect(mirror_error).to_contain_text("Mirror 1: path prefix")
        prefix.fill("dockerhub-proxy")
        expect(mirror_error).to_be_hidden()
        dialog.get_by_label("Left upstream").fill("library/busybox")
        dialog.get_by_label("Ask the mirror for each image first").check()
        prefix.scroll_into_view_if_needed()
        shot(page, "create-dialog-mirror", full_page=False)
        dialog.get_by_role("button", name="Save", exact=True).click()
        expect(page.get_by_role("heading", name="hub", exact=True)).to_be_visible()
        mirrors = page.get_by_role("region", name="Mirrors of public registries")
        expect(mirrors).to_contain_text(f"docker.io → {REGISTRY}/dockerhub-proxy")
        expect(mirrors).to_contain_text("library/busybox")
        # The audit trail names the field as people see it.
        expect(page.get_by_role("region", name="Recent changes")).to_contain_text("Mirrored registries")
        shot(page, "registry-detail-mirror")
        page.goto(URL + "/#/workload?namespace=team-a")
        page.get_by_label("Image (registry-relative)").fill("nginx:1.25")
        # The check goes to the real registry, which has no such project:
        # the image stays upstream, and the page says why.
        expect(page.get_by_text("Not registry-relative: the image is used as written.")).to_be_visible()
        expect(page.locator(".preview.warn")).to_contain_text("cannot serve it")
        status, _ = api("PATCH", "/registries/hub?verify=false",
                        {"mirrorOf": [{"upstream": "docker.io", "pathPrefix": "dockerhub-proxy"}]})
        assert status == 200, status
        page.reload()
        page.get_by_label("Image (registry-relative)").fill("nginx:1.25")
        expect(page.locator(".preview.ok")).to_contain_text(f"{REGISTRY}/dockerhub-proxy/library/nginx:1.25")
        expect(page.locator(".preview.ok")).to_contain_text("through hub, its mirror of docker.io")
        expect(page.locator(".manifest")).to_contain_text(f'image: "{REGISTRY}/dockerhub-proxy/library/nginx:1.25"')
        shot(page, "workload-mirror")
        page.get_by_label("Language").select_option("zh")
        page.get_by_label("镜像（相对路径）").fill("nginx:1.25")
        expect(page.locator(".preview.ok")).to_contain_text("经由 hub（docker.io 的镜像源）")
        page.locator("#lang").select_option("en")
        api("DELETE", "/registries/hub")

        # --- The audit trail: the record's recent changes on its page, and
        # the Activity page (by keyboard: the nav link, then Enter).
        page.goto(URL + "/#/registries/harbor")
        changes = page.get_by_role("region", name="Recent changes")
        expect(changes.locator(".audit-entry").first).to_contain_text("updated")
        expect(changes).to_contain_text("by admin")
        # Fields by the names people see, not the API's.
        expect(changes.locator(".audit-fields").first).to_contain_text("Description")
        assert PASSWORD not in changes.inner_text()
        changes.get_by_role("link", name="All changes to this registry").click()
        expect(page.get_by_role("heading", name="Activity of harbor")).to_be_visible()
        entries = page.locator(".audit-entry")
        expect(entries.last).to_contain_text("created")
        expect(entries.last).to_contain_text("Authorized namespaces, Default for")
        expect(entries.last.locator("[title=defaultFor]")).to_have_count(1)
        status, trail = api("GET", "/audit?registry=harbor&limit=1000")
        expect(entries).to_have_count(len(trail["items"]))
        # A refused edit is there too, marked as such.
        expect(page.locator(".audit-entry", has=page.locator(".chip-bad")).first).to_be_visible()
        shot(page, "activity-registry")
        axe_scan(page, "activity")
        page.get_by_role("link", name="Activity", exact=True).focus()
        page.keyboard.press("Enter")
        expect(page.get_by_role("heading", name="Activity", exact=True)).to_be_visible()
        # More changes than a page: "Older changes" fetches the next one.
        status, trail = api("GET", "/audit?limit=1000")
        if len(trail["items"]) > 50:
            expect(entries).to_have_count(50)
            page.get_by_role("button", name="Older changes").click()
            expect(entries).to_have_count(min(100, len(trail["items"])))
        shot(page, "activity")

        # --- A 401 anywhere returns to sign-in and back to the same page.
        page.goto(URL + "/#/registries/harbor")
        expect(page.get_by_role("heading", name="harbor", exact=True)).to_be_visible()
        page.evaluate("sessionStorage.setItem('registry-resolver.token', 'expired-token')")
        page.get_by_role("button", name="Check again").click()
        expect(page.get_by_text("Your session ended.")).to_be_visible()
        sign_in(page)
        expect(page.get_by_role("heading", name="harbor", exact=True)).to_be_visible()

        # --- Chinese, and a phone-sized screen.
        page.get_by_label("Language").select_option("zh")
        # A failing check says why in Chinese, once: the server's English
        # words are folded away under 详情 (Details), not shown beside it.
        page.get_by_role("button", name="编辑").click()
        dialog = page.get_by_role("dialog")
        dialog.locator("#server-host").fill("127.0.0.1:1")
        dialog.locator("input[type=password]").fill(PASSWORD)
        dialog.get_by_role("button", name="验证", exact=True).click()
        answer = dialog.locator(".outcome .alert-error")
        expect(answer).to_contain_text("无法访问镜像仓库")
        words = answer.locator(".server-words span")
        expect(words).to_be_hidden()
        answer.locator(".server-words summary").click()
        expect(words).to_contain_text("refused the connection")
        page.keyboard.press("Escape")
        # A field's problem is said in Chinese by its kind (the server's
        # `reason`), as it is typed: no English sentence at the field.
        page.get_by_role("button", name="编辑").click()
        dialog = page.get_by_role("dialog")
        dialog.locator("#server-host").fill("127.0.0.1:1")
        password_error = dialog.locator("[data-field=password] .field-error")
        expect(password_error).to_contain_text("请重新输入密码")
        dialog.get_by_text("TLS、拉取密钥和摘要固定").click()
        dialog.get_by_label("拉取密钥名称").fill("Not_A_Secret")
        secret_error = dialog.locator("[data-field=pullSecretName] .field-error")
        expect(secret_error).to_have_text("只能包含小写字母、数字、“-”和“.”。")
        secret_error.scroll_into_view_if_needed()
        shot(page, "edit-dialog-zh-field-errors", full_page=False)
        page.keyboard.press("Escape")
        # The audit trail says refusals in Chinese by their code too; the
        # server's English words are folded under 详情.
        recent = page.locator("section", has=page.get_by_role("heading", name="最近变更"))
        refused = recent.locator(".audit-entry", has_text="请重新输入密码").first
        expect(refused).to_be_visible()
        expect(refused.locator(".server-words span")).to_be_hidden()
        # What the webhook would refuse is said in Chinese by its reason,
        # in the preview and where the manifest would be; the server's
        # words (naming the container) only under 详情.
        page.goto(URL + "/#/workload?namespace=team-z")
        preview = page.locator(".preview.bad")
        expect(preview).to_contain_text("Webhook 会拒绝：未选择镜像仓库，且此项目没有默认仓库。")
        expect(preview.locator(".server-words span")).to_be_hidden()
        preview.locator(".server-words summary").click()
        expect(preview.locator(".server-words span")).to_contain_text("no registry is authorized in namespace")
        expect(page.locator(".alert-error")).to_contain_text("未选择镜像仓库")
        shot(page, "workload-zh-denied")
        expect(page.get_by_role("link", name="镜像仓库", exact=True)).to_be_visible()
        page.get_by_role("link", name="镜像仓库", exact=True).click()
        expect(page.get_by_role("heading", name="镜像仓库", exact=True)).to_be_visible()
        shot(page, "registries-zh")
        axe_scan(page, "list (zh)")
        page.set_viewport_size({"width": 390, "height": 844})

        def fits_the_screen(name):
            # Nothing wider than the phone: long code scrolls in its own box.
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, f"{name} is {width} px wide at 390 px"

        shot(page, "registries-zh-390")
        fits_the_screen("list (zh)")
        page.locator("#lang").select_option("en")
        shot(page, "registries-390")
        fits_the_screen("list")
        page.goto(URL + "/#/registries/harbor")
        expect(page.get_by_role("heading", name="harbor", exact=True)).to_be_visible()
        shot(page, "registry-detail-390")
        fits_the_screen("registry page")
        page.goto(URL + "/#/workload?namespace=team-a")
        expect(page.locator(".preview.ok")).to_be_visible()
        expect(page.locator(".manifest")).to_contain_text("imagePullSecrets")
        shot(page, "workload-390")
        fits_the_screen("workload page")
        # On a phone the form scrolls under fixed buttons: Check's answer is
        # brought into view, wherever the form was scrolled to.
        page.goto(URL + "/#/registries")
        dialog = open_create_dialog(page)
        fill_registry(dialog, "phone", REGISTRY, default=())
        dialog.evaluate("d => { d.scrollTop = 0; }")
        dialog.get_by_role("button", name="Check").click()
        answer = dialog.get_by_text("The registry accepted this address and login.")
        expect(answer).to_be_in_viewport()
        shot(page, "create-dialog-390")
        page.keyboard.press("Escape")
        page.goto(URL + "/#/activity")
        expect(page.locator(".audit-entry").first).to_be_visible()
        shot(page, "activity-390")
        fits_the_screen("activity page")
        page.locator("#lang").select_option("zh")
        expect(page.get_by_role("heading", name="操作记录", exact=True)).to_be_visible()
        expect(page.locator(".audit-entry").first).to_contain_text("操作者 admin")
        shot(page, "activity-zh-390")
        fits_the_screen("activity page (zh)")
        page.locator("#lang").select_option("en")
        page.set_viewport_size({"width": 1280, "height": 860})

        # --- The dark theme follows the system's; every page passes axe's
        # contrast check in it.
        page.emulate_media(color_scheme="dark")
        page.goto(URL + "/#/registries")
        expect(page.get_by_role("heading", name="Image registries", exact=True)).to_be_visible()
        assert page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(13, 17, 23)"
        axe_scan(page, "list (dark)")
        shot(page, "registries-dark")
        page.goto(URL + "/#/registries/harbor")
        expect(page.get_by_role("heading", name="harbor", exact=True)).to_be_visible()
        expect(page.locator(".audit-entry").first).to_be_visible()
        axe_scan(page, "detail (dark)")
        shot(page, "registry-detail-dark")
        page.get_by_role("button", name="Edit").click()
        dialog = page.get_by_role("dialog")
        dialog.get_by_role("button", name="Check").click()
        expect(dialog.locator(".outcome .alert")).to_be_visible()
        axe_scan(page, "dialog (dark)")
        shot(page, "edit-dialog-dark")
        page.keyboard.press("Escape")
        page.goto(URL + "/#/workload?namespace=team-a")
        expect(page.locator(".manifest")).to_be_visible()
        axe_scan(page, "workload (dark)")
        shot(page, "workload-dark")
        page.emulate_media(color_scheme="light")

        # --- Sign out.
        page.get_by_role("button", name="Sign out").click()
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        assert page.evaluate("sessionStorage.getItem('registry-resolver.token')") is None


if __name__ == "__main__":
    main()
