"""The chat app updates its model from a store: name and version in the header, a pull from Settings on a worker
thread, the switch once the new version has loaded, and a failed update that leaves the running version."""
from __future__ import annotations

import threading
import time

import pytest

pytestmark = pytest.mark.ui


def test_the_app_pulls_an_update_and_survives_a_broken_one(tiny_bundle, run_scenario, tmp_path):
    from edge_sdk.deploy.publish import publish
    from edge_sdk.store import Store

    from tests.store.conftest import StaticServer, variant

    site = tmp_path / "site" / "models"
    site.mkdir(parents=True)
    server = StaticServer(tmp_path / "site")
    url = server.url + "models/"
    template = (tiny_bundle / "chat_template.jinja").read_text()
    v2 = variant(tiny_bundle, tmp_path / "v2", {"chat_template.jinja": ("Be brief.\n" + template).encode()})
    broken = variant(tiny_bundle, tmp_path / "broken", {"tokenizer.json": b'{"version": "1.0", "model": {}}'})
    publish(tiny_bundle, site, name="tiny", version="1")
    store = Store(tmp_path / "store", load_options={"threads": 1})
    store.pull(url, "tiny")
    publish(v2, site, name="tiny", version="2")
    server.behaviour.delay = 1.5  # before each block sent: the update (index, listing, manifest, file) takes 6 s
    signal = tmp_path / "step"
    signal.write_text("")

    def publisher():  # publishes the broken version when the scenario asks for it
        deadline = time.time() + 200
        while signal.read_text() != "broken" and time.time() < deadline:
            time.sleep(0.1)
        publish(broken, site, name="tiny", version="3")
        signal.write_text("published")

    t = threading.Thread(target=publisher, daemon=True)
    t.start()
    try:
        # The app as installed (edge_sdk.mobile_demo): what a device runs, and what the mutation check mutates.
        res = run_scenario("scenario_update.py", timeout=400, UI_BUNDLE=store.path("tiny"), UI_PUBLISH=signal,
                           EDGE_SDK_THREADS=1, UI_APP_MODULE="edge_sdk.mobile_demo.app")
    finally:
        server.close()
    assert res["start"]["model_name"].endswith(" · 1")  # the store version beside the model's name
    assert res["start"]["update_url"] == url and res["start"]["update_name"] == "tiny"
    assert res["fields"] == {"url": url, "name": "tiny"}  # Settings offers where the model came from
    up = res["updated"]
    assert up["model_ready"] and up["bundle_path"] == str(Store(tmp_path / "store").version_dir("tiny", "2"))
    # The main loop kept running during the pull (the server took 1.5 s per request, 6 s in all; a pull on the
    # main thread would freeze it that long): no stall near that, and the banner showed the pull's progress.
    assert up["seconds"] > 6 and up["longest_stall"] < 2.5, up
    assert any(b.startswith(("Checking", "Downloading", "Trying")) for b in up["banners"]), up["banners"]
    assert res["reply"]  # the new version answers
    failed = res["failed"]
    assert failed["banner"].startswith("Update failed: ") and "rolled back" in failed["banner"]
    assert "Still using tiny-llama" in failed["banner"] and failed["model_name"].endswith(" · 2")
    assert failed["bundle_path"] == up["bundle_path"] and failed["model_ready"]
    assert Store(tmp_path / "store").active_version("tiny") == "2"
