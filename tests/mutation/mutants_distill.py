"""Breakages of the teacher log (and adapter merging) that the fast suite must catch."""
from __future__ import annotations

from .mutants import Mutant

LOG = "tests/hybrid/test_teacher_log.py"
LOGFILE = "runtime/hybrid/teacher_log.py"

MUTANTS = (
    Mutant("the teacher log keeps the request unredacted", LOGFILE,
           "body = request.body(model, redactor.redact_all(findings))", "body = request.body(model)",
           (f"{LOG}::test_personal_data_never_reaches_the_log",)),
    Mutant("the teacher log keeps the teacher's answer unredacted", LOGFILE,
           "said = redactor.redact(answer)", "said = answer",
           (f"{LOG}::test_personal_data_never_reaches_the_log",)),
    Mutant("the teacher log appends after a torn line", LOGFILE,
           "size = _cut_torn_tail(fd)", "size = os.fstat(fd).st_size",
           (f"{LOG}::test_a_torn_last_line_is_skipped_and_cut_before_the_next_record",
            f"{LOG}::test_a_writer_killed_mid_write_never_breaks_the_log")),
    Mutant("the teacher log reader raises on a torn line", LOGFILE,
           "                except ValueError:\n                    if stats",
           "                except KeyError:\n                    if stats",
           (f"{LOG}::test_a_torn_last_line_is_skipped_and_cut_before_the_next_record",
            f"{LOG}::test_a_writer_killed_mid_write_never_breaks_the_log")),
    Mutant("the teacher log never rotates", LOGFILE,
           "if size and size + len(line) > self.max_bytes:", "if False:",
           (f"{LOG}::test_rotation_bounds_the_log",)),
    Mutant("the teacher log keeps every old file", LOGFILE,
           "for old in [*files, path][:-self.keep]:", "for old in []:",
           (f"{LOG}::test_rotation_bounds_the_log",)),
    Mutant("the router never writes the teacher log", "runtime/hybrid/router.py",
           "if self.teacher_log is not None and route is not None:", "if False:",
           (f"{LOG}::test_personal_data_never_reaches_the_log",
            f"{LOG}::test_only_the_fallbacks_answers_are_logged_with_reason_and_confidence")),
    Mutant("serve drops --learn", "edge_sdk/cli/serve.py",
           '**({"learn": args.learn} if args.learn else {})', "",
           (f"{LOG}::test_serve_learn_reaches_the_router",)),
)
