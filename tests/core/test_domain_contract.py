"""The domain contract: Domain's defaults, check_domain on the template, and a fourth domain made from the
template, found through the entry-point group and optimized with every strategy."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "faults"))
from strategy_worker import HashEngine  # noqa: E402

from domains import template  # noqa: E402
from tgdomains import strategies  # noqa: E402
from tgdomains.checks import DomainCheckError, check_domain  # noqa: E402
from tgdomains.domain import Domain, get_domain  # noqa: E402
from tgdomains.records import RunRecord  # noqa: E402
from tgdomains.run import optimize, resume  # noqa: E402

TEMPLATE = Path(template.__file__)


def test_the_template_is_a_domain_and_keeps_the_contract():
    domain = template.ArithmeticDomain()
    assert isinstance(domain, Domain)
    passed = check_domain(domain, {"number": 24})
    assert len(passed) > 30 and "the initial value is canonical: parse(value) == value" in passed
    assert len(TEMPLATE.read_text().splitlines()) <= 110  # a page a newcomer reads in one sitting


def test_check_domain_names_the_broken_rule():
    class Raises(template.ArithmeticDomain):
        def evaluate(self, value, instance):
            if not value.strip():
                raise RuntimeError("boom")
            return super().evaluate(value, instance)

    with pytest.raises(DomainCheckError, match=r"evaluate\(''\) does not raise .*RuntimeError: boom"):
        check_domain(Raises(), {"number": 24})

    class Lenient(template.ArithmeticDomain):
        def objectives(self, instance):
            return {"length": "min", "elegance": "max"}

    with pytest.raises(DomainCheckError, match="every objective is a metric.*elegance"):
        check_domain(Lenient(), {"number": 24})


def test_base_domain_defaults():
    class Minimal(Domain):
        name = "minimal"

    d = Minimal()
    assert (d.objectives(None), d.finalize("x", None), d.strategies(), d.report("a", "b")) == ({}, {}, {}, [])
    assert d.default_iterations == 10 and d.load_many.__func__ is Domain.load_many
    with pytest.raises(NotImplementedError, match=r"Minimal.evaluate"):
        d.evaluate("x", None)


@pytest.fixture
def throwaway(tmp_path, monkeypatch):
    """A fourth domain copied from the template and registered in the `tgdomains.domains` entry-point group."""
    source = TEMPLATE.read_text().replace("class ArithmeticDomain(Domain)", "class ThrowawayDomain(Domain)")
    source = source.replace('name = "arithmetic"', 'name = "throwaway"')
    (tmp_path / "throwaway_domain.py").write_text(source)
    info = tmp_path / "throwaway-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: throwaway\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[tgdomains.domains]\nthrowaway = throwaway_domain:ThrowawayDomain\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


@pytest.mark.parametrize("name", strategies.names())
def test_a_domain_from_the_template_runs_with_every_strategy(throwaway, name, tmp_path):
    domain = get_domain("throwaway")
    assert type(domain).__name__ == "ThrowawayDomain" and check_domain(domain, {"number": 997})
    instance = domain.load({"number": 997})
    result = optimize(domain, instance, engine=HashEngine(False), strategy=name, run_dir=tmp_path / "run",
                      iterations=4, progress=False, meta={"instance_args": {"number": 997}})
    record = RunRecord(tmp_path / "run")
    assert record.read_config()["domain"] == "throwaway" and record.read_best()["strategy"] == name
    assert result.usage["evaluations"] >= 1 and result.steps[-1].iteration == 4
    more = resume(tmp_path / "run", engine=HashEngine(False), iterations=5, progress=False)  # found by name
    assert more.steps[:len(result.steps)] == result.steps and more.steps[-1].iteration == 5


def test_the_cli_finds_the_template_domain(throwaway):
    env_path = f"{throwaway}:{':'.join(sys.path)}"
    out = subprocess.run([sys.executable, "-m", "tgdomains.cli", "domains"], capture_output=True, text=True,
                         env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin"}, check=True).stdout
    assert "throwaway" in out.split()
