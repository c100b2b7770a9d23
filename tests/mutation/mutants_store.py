"""Mutants of the model store (issue 28): publish, pull, activation, and the device build that pulls its bundle."""
from __future__ import annotations

from .mutants import Mutant

PULL = "tests/store/test_pull.py"
UNTRUSTED = "tests/store/test_untrusted.py"
PROCS = "tests/store/test_processes.py"

MUTANTS = (
    Mutant("store: downloaded files not checked against their sha256", "runtime/store/fetch.py",
           "        if digest != sha256:", "        if False:",
           (f"{PULL}::test_a_tampered_file_is_refused_and_nothing_changes",)),
    Mutant("store: file names from the server not confined", "runtime/store/layout.py",
           "        check_file_table(files)\n", "        pass\n",
           (f"{UNTRUSTED}::test_file_names_pointing_outside_the_store_are_refused",)),
    Mutant("store: no rollback when the smoke prompt fails", "runtime/store/store.py",
           "                answer = check(folder)\n", "                answer = None\n",
           (f"{PULL}::test_a_version_that_fails_its_smoke_prompt_rolls_back",)),
    Mutant("store: the active pointer written in place", "runtime/store/activate.py",
           '    tmp = model_dir / f".{POINTER}.tmp-{os.getpid()}"', "    tmp = model_dir / POINTER",
           (f"{PROCS}::test_a_kill_at_the_activation_point",)),
    Mutant("store: a cut download starts over (no Range)", "runtime/store/fetch.py",
           '        headers = {"Range": f"bytes={have}-"} if have else {}', "        headers = {}",
           (f"{PULL}::test_a_cut_download_resumes_with_a_range_request",)),
    Mutant("store: disk space not checked", "runtime/store/pull.py",
           "    if need + HEADROOM > free:", "    if False:",
           (f"{PULL}::test_disk_space_is_checked_before_downloading",)),
    Mutant("store: a full disk leaves this pull's downloads behind", "runtime/store/pull.py",
           "            _forget(store, staging, listing)\n", "            shutil.rmtree(staging, ignore_errors=True)\n",
           (f"{PULL}::test_a_full_disk_mid_download_leaves_the_store_as_it_was",)),
    Mutant("store: the signature checked only after the downloads", "runtime/store/pull.py",
           "            verify_bundle_signature(staging, manifest_bytes, keys)", "            pass",
           (f"{UNTRUSTED}::test_signatures",)),
    Mutant("store: the token follows a redirect to another host", "runtime/store/fetch.py",
           '            out.remove_header("Authorization")', "            pass",
           (f"{UNTRUSTED}::test_redirects_keep_the_token_within_one_origin",)),
    Mutant("store: no lock between two pulls", "runtime/store/lock.py",
           "                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)", "                pass",
           (f"{PROCS}::test_two_pulls_at_once",)),
    Mutant("store: files already on the device downloaded again", "runtime/store/pull.py",
           "        elif sha in local and _matches(local[sha], size, sha):", "        elif False:",
           (f"{PULL}::test_an_update_downloads_only_the_changed_files",)),
    Mutant("store: deep JSON nesting is a crash", "runtime/store/layout.py",
           "    except (ValueError, UnicodeDecodeError, RecursionError) as e:",
           "    except (ValueError, UnicodeDecodeError) as e:",
           (f"{UNTRUSTED}::test_malformed_or_hostile_indexes",)),
    Mutant("publish: the index written in place", "deploy/publish.py",
           '    tmp = path.parent / f".{path.name}.tmp-{os.getpid()}"', "    tmp = path",
           ("tests/store/test_publish.py::test_a_publish_that_dies_leaves_the_previous_index",)),
    Mutant("publish: a published version overwritten", "deploy/publish.py",
           '            if old["manifest_sha256"] != manifest_sha:', "            if False:",
           ("tests/store/test_publish.py::test_publish_refuses_what_would_break_devices",)),
    Mutant("package --store-url: run.sh still runs the bundle it does not ship", "deploy/store_build.py",
           """    body = run_sh[end:].replace('"$here/bundle"', '"$bundle"')""", "    body = run_sh[end:]",
           ("tests/store/test_package_store.py::test_run_sh_pulls_first_then_runs_the_stores_active_version",)),
)

RELOAD = "tests/store/test_reload.py"
MUTANTS += (
    Mutant("serve reload: a new tokenizer swapped in under queued requests", "runtime/server/reload.py",
           "    return key(old) == key(new) and adapters(old) <= adapters(new)", "    return True",
           (f"{RELOAD}::test_a_new_tokenizer_holds_new_requests_until_the_old_ones_finish",)),
    Mutant("serve reload: the old model goes back into the pool", "runtime/server/pool.py",
           "        if any(model is m for m in self.models):", "        if True:",
           (f"{RELOAD}::test_reload_swaps_without_dropping_the_running_request",)),
    Mutant("serve reload: every swap waits for the running requests", "runtime/server/reload.py",
           "            held = not tokenizes_alike(old_manifest, models[0].manifest)", "            held = True",
           (f"{RELOAD}::test_reload_swaps_without_dropping_the_running_request",)),
    Mutant("serve reload: the admin endpoint takes no key", "runtime/server/reload.py",
           "            self.server._authorize(request)", "            pass",
           (f"{RELOAD}::test_the_admin_endpoint_and_failed_reloads",)),
)

MUTANTS += (
    Mutant("app: the update is pulled on the main thread", "mobile_demo/updates.py",
           '    thread = threading.Thread(target=run, name="edge-sdk-update", daemon=True)\n    thread.start()\n'
           "    return thread",
           "    run()",
           ("tests/ui/test_update_ui.py::test_the_app_pulls_an_update_and_survives_a_broken_one",)),
)
