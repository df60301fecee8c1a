"""The console against a server in Kubernetes mode (the in-memory API
server behind it), in Debian's Chromium: sign-in with Kubernetes tokens, a
user without permission told which one is missing, and Create sending the
Deployment to the cluster with the signed-in user's own token.
"""

import os
import re
import sys

from playwright.sync_api import expect, sync_playwright

# A loaded CI machine is slower than a laptop: wait longer before failing.
expect.set_options(timeout=15_000)

URL = os.environ["CONSOLE_URL"]
ADMIN = os.environ["ADMIN_TOKEN"]
DEV = os.environ["DEV_TOKEN"]
SHOTS = os.environ["SCREENSHOT_DIR"]
AXE = os.environ["AXE_JS"]

problems = []
EXPECTED_NETWORK = re.compile(r"^Failed to load resource: the server responded with a status of (401|403|409|422)")


def on_console(message):
    if message.type == "error" and not EXPECTED_NETWORK.match(message.text):
        problems.append(f"console error: {message.text}")


def sign_in(page, token):
    page.get_by_label("API token").fill(token)
    page.get_by_role("button", name="Sign in").click()


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
        page.on("console", on_console)
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        try:
            page.goto(URL + "/")
            expect(page.get_by_text("Paste a Kubernetes bearer token")).to_be_visible()

            # A user whose RBAC allows nothing here: told what is missing.
            sign_in(page, DEV)
            alert = page.get_by_role("alert")
            expect(alert).to_contain_text("You do not have permission:")
            expect(alert).to_contain_text("imageregistries")
            page.screenshot(path=os.path.join(SHOTS, "kubernetes-forbidden.png"), full_page=True)
            page.get_by_role("button", name="Sign out").click()

            # An admin: the picker, and Create with the admin's own token.
            sign_in(page, ADMIN)
            expect(page.get_by_role("heading", name="Image registries")).to_be_visible()

            # A record for 400 projects, its pull Secrets still being
            # written: the page says how far, and follows it to the end.
            page.goto(URL + "/#/registries/fleet")
            progress = page.locator(".replication")
            expect(progress).to_contain_text(re.compile(r"Writing pull Secrets: \d+ of 400 namespaces have the current one"))
            first = progress.inner_text()
            # The per-entry chip waits for the end: the count says it meanwhile.
            expect(page.get_by_text("matching namespaces")).to_have_count(0)
            page.screenshot(path=os.path.join(SHOTS, "kubernetes-replicating.png"), full_page=True)
            # In Chinese, on a phone.
            page.locator("#lang").select_option("zh")
            page.set_viewport_size({"width": 390, "height": 844})
            expect(page.locator(".replication")).to_contain_text(re.compile(r"正在写入拉取 Secret：400 个项目中已有 \d+ 个为最新"))
            page.screenshot(path=os.path.join(SHOTS, "kubernetes-replicating-zh-390.png"), full_page=True)
            page.locator("#lang").select_option("en")
            page.set_viewport_size({"width": 1280, "height": 860})
            expect(progress).not_to_have_text(first, timeout=15000)
            expect(page.get_by_text("pull Secret fleet in 400 matching namespaces")).to_be_visible(timeout=40000)
            expect(progress).to_be_empty()
            page.goto(URL + "/#/registries")

            # The registry's page: where its pull Secret is in place.
            page.get_by_role("link", name="harbor", exact=True).click()
            expect(page.get_by_text("pull Secret harbor in place")).to_have_count(2)
            page.screenshot(path=os.path.join(SHOTS, "kubernetes-registry.png"), full_page=True)

            # A plain-HTTP registry: how many nodes can pull from it.
            page.goto(URL + "/#/registries/lab")
            expect(page.get_by_text("Nodes that can pull from this registry: 1 of 1.")).to_be_visible()
            page.screenshot(path=os.path.join(SHOTS, "kubernetes-node-trust.png"), full_page=True)
            page.goto(URL + "/#/registries")

            # The dialog suggests the cluster's namespaces.
            page.get_by_role("link", name="Registries", exact=True).click()
            page.get_by_role("button", name="Add registry").first.click()
            expect(page.locator("dialog datalist option[value='team-c']")).to_have_count(1)
            # A registry for every project of a workspace, chosen by label,
            # and the default there: typed, saved, shown.
            dialog = page.get_by_role("dialog")
            # One Cancel: the one that stops a running check shows only then.
            expect(dialog.get_by_role("button", name="Cancel")).to_have_count(1)
            dialog.get_by_label("Name", exact=True).fill("harbor-ws1")
            dialog.locator("#server-host").fill("harbor-ws1.example.com")
            dialog.get_by_label("Namespaces by label").fill("kubesphere.io/workspace=ws1")
            dialog.get_by_role("checkbox", name="Default in the namespaces these labels choose").check()
            # Nothing listens at that name: no repository listing.
            dialog.get_by_text("TLS, pull secret and pinning").click()
            dialog.get_by_label("Repository listing").select_option("none")
            dialog.get_by_role("checkbox", name="Save without checking").check()
            page.screenshot(path=os.path.join(SHOTS, "kubernetes-selector-dialog.png"), full_page=True)
            dialog.get_by_role("button", name="Save", exact=True).click()
            expect(page.get_by_role("heading", name="harbor-ws1")).to_be_visible()
            expect(page.get_by_text("Every namespace with the labels")).to_contain_text("kubesphere.io/workspace=ws1")
            # Its hint says where it is the default: by those labels.
            expect(page.get_by_text("In the namespaces with the labels kubesphere.io/workspace=ws1 this registry is the default")).to_be_visible()
            page.screenshot(path=os.path.join(SHOTS, "kubernetes-selector-registry.png"), full_page=True)
            # A project of the workspace: the default applies through its labels.
            page.goto(URL + "/#/workload?namespace=proj-1")
            expect(page.get_by_text("through this namespace's labels")).to_contain_text("harbor-ws1")
            expect(page.get_by_text("through this namespace's labels")).to_contain_text("kubesphere.io/workspace=ws1")
            # Editing keeps the selector (a PUT carries the whole record).
            page.goto(URL + "/#/registries/harbor-ws1")
            page.get_by_role("button", name="Edit").click()
            dialog = page.get_by_role("dialog")
            expect(dialog.get_by_label("Namespaces by label")).to_have_value("kubesphere.io/workspace=ws1")
            dialog.get_by_label("Description").fill("workspace ws1")
            # The whole short form kubectl -l takes, read by the server: a
            # slip is said at the field as it is typed, where it is.
            by_labels = dialog.get_by_label("Namespaces by label")
            by_labels.fill("kubesphere.io/workspace in (ws1,ws2")
            expect(dialog.locator("[data-field=namespaceSelector] .field-error")).to_contain_text(
                'expected "," or ")" at character 36')
            by_labels.fill("kubesphere.io/workspace in (ws1,ws2),!legacy")
            expect(dialog.locator("[data-field=namespaceSelector] .field-error")).to_be_hidden()
            dialog.get_by_role("checkbox", name="Save without checking").check()
            dialog.get_by_role("button", name="Save", exact=True).click()
            expect(page.get_by_text("Every namespace with the labels")).to_contain_text(
                "kubesphere.io/workspace in (ws1,ws2),!legacy")
            page.get_by_role("link", name="Registries", exact=True).click()
            page.get_by_role("button", name="Add registry").first.click()
            page.keyboard.press("Escape")
            page.goto(URL + "/#/workload?namespace=team-a")
            expect(page.get_by_label("Registry", exact=True)).to_contain_text("Namespace default (harbor)")
            page.get_by_label("Image (registry-relative)").fill("/mysql/mysql:5.6")
            expect(page.locator(".preview.ok")).to_contain_text("mysql/mysql:5.6")
            page.get_by_role("button", name="Create in the cluster").click()
            expect(page.get_by_text("Created deployment mysql in team-a.")).to_be_visible()
            expect(page.locator(".alert-ok li")).to_contain_text("mysql: /mysql/mysql:5.6")
            page.screenshot(path=os.path.join(SHOTS, "kubernetes-created.png"), full_page=True)
            # The same again: the cluster's own refusal, in the page.
            page.get_by_role("button", name="Create in the cluster").click()
            expect(page.get_by_role("alert")).to_contain_text("already exists")
            expect(page.get_by_role("alert")).to_contain_text("The cluster refused this:")
        except Exception:
            page.screenshot(path="/tmp/console-kubernetes-failure.png", full_page=True)
            print("at", page.url, "\n", page.locator("body").inner_text()[:2000])
            raise
        browser.close()
    if problems:
        print("\n".join(problems))
        sys.exit(1)
    print("kubernetes console flows passed")


if __name__ == "__main__":
    main()
