"""The FileCheck helper itself: it passes on a right check and fails, with FileCheck's message, on a wrong one."""
from __future__ import annotations

import pytest

TEXT = """\
define i32 @"llad.rev.0123abcd"(ptr %x) {
entry:
  %v = load double, ptr %x, align 8
  ret i32 0
}
define internal void @llad.tape.grow() {
  call ptr @realloc(ptr null, i64 8)
  ret void
}
"""


def test_a_right_check_passes(filecheck):
    filecheck(TEXT, """
        CHECK-LABEL: define i32 @"llad.rev.{{[0-9a-f]+}}"(
        CHECK: load double, ptr %x
        CHECK-NOT: @realloc(
        CHECK: {{^}}}
    """)


def test_a_wrong_check_fails(filecheck_raw):
    with pytest.raises(AssertionError, match=r"(?s)FileCheck failed.*store double"):
        filecheck_raw(TEXT, """
            CHECK-LABEL: define i32 @"llad.rev.{{[0-9a-f]+}}"(
            CHECK: store double
        """)


def test_a_negative_check_fails_when_the_pattern_is_there(filecheck_raw):
    """The bounded CHECK-NOT idiom really looks at the function body: the load is inside it."""
    with pytest.raises(AssertionError, match="FileCheck failed"):
        filecheck_raw(TEXT, """
            CHECK-LABEL: define i32 @"llad.rev.{{[0-9a-f]+}}"(
            CHECK-NOT: load double
            CHECK: {{^}}}
        """)
    # and an unbounded CHECK-NOT would see the runtime function after it: why checks end at `}`
    with pytest.raises(AssertionError, match="FileCheck failed"):
        filecheck_raw(TEXT, """
            CHECK-LABEL: define i32 @"llad.rev.{{[0-9a-f]+}}"(
            CHECK-NOT: @realloc(
        """)


def test_the_fixture_fails_the_test(filecheck):
    with pytest.raises(pytest.fail.Exception, match="FileCheck failed"):
        filecheck(TEXT, "CHECK: this is not in the text")


def test_a_check_file_without_checks_is_refused(filecheck_raw):
    with pytest.raises(ValueError):
        filecheck_raw(TEXT, "just a comment")
