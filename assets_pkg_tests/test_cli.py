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


def _subcommands(parser, path=("assets-pkg",)):
    import argparse

    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _subcommands(sub, (*path, name))


def test_every_option_of_every_subcommand_says_its_default_or_what_it_does():
    import argparse

    from assets_pkg.cli import build_parser

    lacking = []
    for path, parser in _subcommands(build_parser()):
        for action in parser._actions:
            if not action.option_strings or isinstance(action, argparse._HelpAction):
                continue
            text = (action.help or "").lower()
            if isinstance(action, argparse._StoreTrueAction):
                ok = len(text) > 10  # a flag: its help says what it turns on
            elif action.required:
                ok = "required" in text
            else:
                ok = "default" in text
            if not ok:
                lacking.append(f"{' '.join(path)} {'/'.join(action.option_strings)}: {action.help!r}")
    assert not lacking, "options without their default:\n" + "\n".join(lacking)
