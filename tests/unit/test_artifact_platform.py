"""Target platforms and wheel tags: which wheels run on the hosts (pure, no network)."""

from __future__ import annotations

import pytest

from shipit.platform import (
    PlatformError,
    TargetPlatform,
    best_wheel,
    check_wheel_tags,
    from_host_facts,
    target_for_hosts,
)

X86 = TargetPlatform("3.11", "x86_64", "2.36")
ARM = TargetPlatform("3.11", "aarch64", "2.36")
PYDANTIC_ARM = "pydantic_core-2.50.5-cp311-cp311-manylinux2014_aarch64.manylinux_2_17_aarch64.whl"
PYDANTIC_X86 = "pydantic_core-2.50.5-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"


def test_pure_and_matching_wheels_pass() -> None:
    assert check_wheel_tags(["/w/six-1.16.0-py2.py3-none-any.whl", PYDANTIC_X86,
                             "cryptography-44.0.0-cp39-abi3-manylinux_2_28_x86_64.whl"], X86) == []
    assert check_wheel_tags([PYDANTIC_ARM], ARM) == []


def test_wrong_machine_is_refused_naming_the_package() -> None:
    problems = check_wheel_tags([PYDANTIC_ARM, "six-1.16.0-py3-none-any.whl"], X86)
    assert len(problems) == 1
    assert problems[0].startswith("pydantic-core 2.50.5 (") and "x86_64" in problems[0]
    assert "cp311-cp311-manylinux_2_17_aarch64" in problems[0]


def test_newer_glibc_or_other_python_is_refused() -> None:
    old = TargetPlatform("3.11", "x86_64", "2.28")
    assert check_wheel_tags(["x-1-cp311-cp311-manylinux_2_28_x86_64.whl"], old) == []
    assert check_wheel_tags(["x-1-cp311-cp311-manylinux_2_34_x86_64.whl"], old)
    assert check_wheel_tags(["x-1-cp312-cp312-manylinux_2_17_x86_64.whl"], X86)
    assert check_wheel_tags(["x-1-cp311-cp311-musllinux_1_2_x86_64.whl"], X86)
    assert check_wheel_tags(["not-a-wheel.tar.gz"], X86)[0].startswith("not-a-wheel.tar.gz: not a wheel")


def test_best_wheel_prefers_the_compiled_one_for_the_target() -> None:
    files = ["sqlalchemy-2.1.9-py3-none-any.whl",
             "sqlalchemy-2.1.9-cp311-cp311-manylinux2014_aarch64.manylinux_2_17_aarch64.whl",
             "sqlalchemy-2.1.9-cp311-cp311-manylinux_2_17_x86_64.whl"]
    assert best_wheel(files, ARM) == files[1]
    assert best_wheel(files, X86) == files[2]
    assert best_wheel(files, TargetPlatform("3.12", "x86_64", "2.36")) == files[0]
    assert best_wheel(files[1:2], X86) is None


def test_uv_platform_clamps_to_what_uv_knows() -> None:
    assert ARM.uv_platform() == "aarch64-manylinux_2_36"
    assert TargetPlatform("3.13", "x86_64", "2.41").uv_platform() == "x86_64-manylinux_2_40"
    assert TargetPlatform("3.11", "x86_64", "2.30").uv_platform() == "x86_64-manylinux_2_28"
    with pytest.raises(PlatformError):
        TargetPlatform("3.11", "x86_64", "2.12").uv_platform()
    with pytest.raises(PlatformError, match="x86_64, aarch64"):
        TargetPlatform("3.11", "riscv64", "2.36")


def test_target_from_host_facts() -> None:
    web = {"machine": "aarch64", "glibc": "2.36", "codename": "bookworm", "pythons": ["3.11"]}
    assert from_host_facts(web) == ARM
    assert from_host_facts(web, "3.13").python == "3.13"
    assert from_host_facts(dict(web, codename="sid", pythons=["3.11", "3.12"])).python == "3.12"
    with pytest.raises(PlatformError, match="web9: the host facts give no machine/glibc"):
        from_host_facts(dict(web, glibc=""), host="web9")


def test_one_target_for_a_fleet_takes_the_oldest_glibc() -> None:
    a = {"machine": "x86_64", "glibc": "2.36", "codename": "bookworm"}
    b = {"machine": "x86_64", "glibc": "2.41", "codename": "bookworm"}
    assert target_for_hosts({"web1": a, "web2": b}) == X86
    with pytest.raises(PlatformError, match="web2"):
        target_for_hosts({"web1": a, "web2": dict(b, machine="aarch64")})
    with pytest.raises(PlatformError, match="no hosts"):
        target_for_hosts({})
