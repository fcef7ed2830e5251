"""The top-level `assets-pkg` commands that belong to no domain."""

import pytest

from assets_pkg.cli import main
from assets_pkg.domains import DOMAINS


def test_generate_without_a_domain_generates_every_domain(data_root, capsys):
    assert main(["generate", "--scale", "test"]) == 0
    assert capsys.readouterr().out.strip() == f"generated: {', '.join(DOMAINS)}"
    from assets_pkg.demo.runner import demo_module

    for domain in DOMAINS:
        assert any((data_root / "inbox" / demo_module(domain).INBOX).rglob("*.*")), domain


def test_generate_one_domain_and_refuse_an_unknown_one(data_root, capsys):
    assert main(["generate", "splits", "--scale", "test"]) == 0
    assert capsys.readouterr().out.strip() == "generated: splits"
    assert not (data_root / "inbox" / "accounts").exists()
    with pytest.raises(SystemExit) as exc:
        main(["generate", "nope"])
    assert exc.value.code == 2
    assert "invalid domain 'nope'" in capsys.readouterr().err
