"""Golden vectors: the file that validates other implementations (docs/golden-format.md).

"Validating other implementations is the first use of this project." This
module

* reads a golden ``config`` (:func:`config_from_dict`) strictly: every key of
  docs/golden-format.md is required, every value is checked, a bad one raises
  ``ValueError`` naming the key; keys an implementation added are ignored;
* holds the curated list :data:`CASES` of small networks that together cover
  every switch of docs/model.md (see docs/golden.md for the table);
* computes every quantity of a case with refimpl (:func:`compute_case`) and
  writes the golden file deterministically (:func:`export`): no time stamps,
  fixed order, fixed seeds, so that a re-export gives identical datasets;
* compares a candidate file with a reference quantity by quantity
  (:func:`compare`), under per-quantity tolerances (:data:`TOLERANCES`),
  with the rule ``|candidate - reference| <= atol + rtol·|reference|``;
* provides the command-line entries ``refimpl validate`` and
  ``refimpl golden export|list`` (a plugin of :mod:`refimpl.cli`).

Exit codes of ``refimpl validate``: 0 every quantity present in the candidate
agrees, 1 at least one mismatch, 2 the candidate (or reference) cannot be
read or is not in the golden format (a one-line reason, never a traceback).

Modules: :mod:`~refimpl.check.golden.schema` (the format's constants and the case config),
:mod:`~refimpl.check.golden.cases` (the cases, their computation, the export), :mod:`~refimpl.check.golden.files`
(reading a file), :mod:`~refimpl.check.golden.compare` (``refimpl validate``).
"""

from refimpl.check.golden.cases import CASE_NAMES, CASES, Case, as_stored, compute_case, coverage, export, get_case, make_problem
from refimpl.check.golden.compare import (COPIES, TOLERANCES, Report, Row, check_reference, compare,
    expected_paths, format_report, kind_of)  # fmt: skip
from refimpl.check.golden.files import GoldenFile, read_golden
from refimpl.check.golden.schema import (FORMAT, FORMAT_VERSION, GENERATOR, OPTIONAL, SCHEMA, FormatError,
    config_from_dict, config_to_dict, default_reference)  # fmt: skip

__all__ = ["CASES", "CASE_NAMES", "COPIES", "Case", "FORMAT", "FORMAT_VERSION", "FormatError", "GENERATOR",
    "GoldenFile", "OPTIONAL", "Report", "Row", "SCHEMA", "TOLERANCES", "as_stored", "check_reference", "compare",
    "compute_case", "config_from_dict", "config_to_dict", "coverage", "default_reference", "expected_paths",
    "export", "format_report", "get_case", "kind_of", "make_problem", "read_golden"]  # fmt: skip
