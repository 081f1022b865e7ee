"""Templates: `lifecycle templates check` on the real templates, broken ones fail it, sandbox,
preview, publish (a database version overrides the file and is recorded on the message)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from lifecycle.contracts.policy import load_policy
from lifecycle.db import session_scope
from lifecycle.email.templates.checks import check_templates
from lifecycle.email.templates.render import TemplateRenderError, TemplateSet
from lifecycle.email.templates.samples import sample_vars
from lifecycle.models import EmailMessage
from starter.cli.email import templates_app
from tests.support.email import TEMPLATES, EmailDB

runner = CliRunner()


def _env(monkeypatch: pytest.MonkeyPatch, templates: Path, db_url: str = "sqlite:///:memory:") -> None:
    monkeypatch.setenv("LIFECYCLE_TEMPLATES_DIR", str(templates))
    monkeypatch.setenv("LIFECYCLE_DATABASE_URL", db_url)
    monkeypatch.setenv("LIFECYCLE_POLICY_FILE", str(templates / "campaigns.toml"))


@pytest.fixture
def tdir(tmp_path: Path) -> Path:
    dest = tmp_path / "templates"
    shutil.copytree(TEMPLATES, dest)
    return dest


def test_check_passes_on_the_shipped_templates(monkeypatch: pytest.MonkeyPatch) -> None:
    _env(monkeypatch, TEMPLATES)
    result = runner.invoke(templates_app, ["check"])
    assert result.exit_code == 0, result.output
    assert "templates OK" in result.output and "welcome" in result.output


BROKEN = {
    "syntax": ("{% extends '_layout.j2' %}{% block subject %}Hi {{ customer.first_name }{% endblock %}"
               "{% block html_body %}x{% endblock %}{% block text_body %}x{% endblock %}", "line 1"),
    "undeclared": ("{% extends '_layout.j2' %}{% block subject %}Save {{ discount }}{% endblock %}"
                   "{% block html_body %}x{% endblock %}{% block text_body %}x{% endblock %}",
                   "uses 'discount'"),
    "relative_link": ("{% extends '_layout.j2' %}{% block subject %}Hi{% endblock %}"
                      "{% block html_body %}<a href='/billing'>pay</a>{% endblock %}"
                      "{% block text_body %}x{% endblock %}", "not absolute"),
    "no_text": ("{% extends '_layout.j2' %}{% block subject %}Hi{% endblock %}"
                "{% block html_body %}x{% endblock %}", "block text_body"),
    "no_layout": ("{% block subject %}Hi{% endblock %}{% block html_body %}x{% endblock %}"
                  "{% block text_body %}x{% endblock %}", "extends"),
    "bad_vars_comment": ("{% extends '_layout.j2' %}{#- vars\nlimit = = 3\n-#}"
                         "{% block subject %}Hi {{ limit }}{% endblock %}"
                         "{% block html_body %}x{% endblock %}{% block text_body %}x{% endblock %}",
                         "not valid TOML"),
    "bad_attribute": ("{% extends '_layout.j2' %}{% block subject %}Hi {{ customer.nickname }}{% endblock %}"
                      "{% block html_body %}x{% endblock %}{% block text_body %}x{% endblock %}",
                      "nickname"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_template_fails_check(case: str, tdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source, expected = BROKEN[case]
    (tdir / "email" / "welcome.j2").write_text(source)
    _env(monkeypatch, tdir)
    result = runner.invoke(templates_app, ["check"])
    assert result.exit_code == 1, result.output
    assert "welcome" in result.output and expected in result.output


def test_check_fails_when_a_step_names_a_missing_template_or_layout_loses_its_footer(tdir: Path) -> None:
    policy = load_policy(tdir / "campaigns.toml")
    policy.onboarding.steps[0].template = "welcome_v2"
    (tdir / "email" / "_layout.j2").write_text(
        (tdir / "email" / "_layout.j2").read_text().replace("{{ postal_address }}", "")
    )
    problems = [str(p) for p in check_templates(TemplateSet(tdir / "email"), policy)]
    assert any("welcome_v2" in p and "onboarding.welcome" in p for p in problems)
    assert any("postal_address" in p for p in problems)


def test_a_step_must_declare_the_variables_its_template_uses(tdir: Path) -> None:
    policy = load_policy(tdir / "campaigns.toml")
    del policy.trial.reminders[1].vars["has_payment_method"]
    problems = [str(p) for p in check_templates(TemplateSet(tdir / "email"), policy)]
    assert problems == [
        "trial_reminder: uses 'has_payment_method', not declared in vars of step(s) trial.reminder_1_day"
    ]


def test_sandbox_keeps_templates_away_from_python_internals(tdir: Path) -> None:
    (tdir / "email" / "evil.j2").write_text(
        "{% extends '_layout.j2' %}{% block subject %}{{ customer.__class__.__mro__ }}{% endblock %}"
        "{% block html_body %}{{ ''.__class__.__mro__[1].__subclasses__() }}{% endblock %}"
        "{% block text_body %}x{% endblock %}"
    )
    templates = TemplateSet(tdir / "email")
    with pytest.raises(TemplateRenderError, match="evil"):
        templates.render("evil", sample_vars("evil", None))


def test_rendering_inlines_css_and_has_preheader_footer_and_unsubscribe() -> None:
    policy = load_policy(TEMPLATES / "campaigns.toml")
    out = TemplateSet(TEMPLATES / "email").render("welcome", sample_vars("welcome", policy))
    assert out.subject == "Welcome aboard, Ada"
    assert out.preheader == "Your Starter trial has started. Here is how to get going."
    assert '<style' not in out.html and 'style="' in out.html  # CSS inlined
    assert 'class="preheader"' in out.html and out.preheader in out.html
    assert "https://app.example.com/unsubscribe?token=sample" in out.html
    # welcome is transactional (the answer to a signup): its footer says so
    assert "Unsubscribe from marketing email: https://app.example.com/unsubscribe?token=sample" in out.text
    assert "1 Main Street" in out.html and "1 Main Street" in out.text
    assert "<p" not in out.text and "Welcome, Ada!" in out.text
    tip = TemplateSet(TEMPLATES / "email").render("tip_first_project", sample_vars("tip_first_project", policy))
    assert "Unsubscribe: https://app.example.com/unsubscribe?token=sample" in tip.text


def test_preview_with_sample_data_writes_subject_html_and_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _env(monkeypatch, TEMPLATES, f"sqlite:///{tmp_path / 'none.db'}")
    out = tmp_path / "preview"
    result = runner.invoke(
        templates_app, ["preview", "trial_reminder", "--sample", "--out", str(out), "--no-open"]
    )
    assert result.exit_code == 0, result.output
    assert "Your trial ends in 3 days" in result.output
    assert "Add a payment method" in (out / "trial_reminder.html").read_text()
    text = (out / "trial_reminder.txt").read_text()
    assert text.startswith("Subject: Your trial ends in 3 days\n")


def test_preview_with_a_customer_and_publish_a_new_version(
    email_db: EmailDB, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    email_db.add_customer("cus_pv", name="Katherine Johnson")
    _env(monkeypatch, TEMPLATES, email_db.url)
    out = tmp_path / "preview"
    args = ["preview", "welcome", "--customer", "cus_pv", "--out", str(out), "--no-open"]
    result = runner.invoke(templates_app, args)
    assert result.exit_code == 0, result.output
    assert "Welcome aboard, Katherine" in result.output
    assert "Version:   file" in result.output

    edited = tmp_path / "welcome.j2"
    edited.write_text((TEMPLATES / "email" / "welcome.j2").read_text().replace(
        "Welcome aboard,", "Hello from {{ company_name }},"))
    result = runner.invoke(templates_app, ["publish", "welcome", "--file", str(edited), "--author", "mia"])
    assert result.exit_code == 0, result.output
    assert "welcome v1 published" in result.output
    result = runner.invoke(templates_app, ["preview", "welcome", "--customer", "cus_pv", "--out",
                                           str(out), "--no-open"])
    assert "Hello from Example Inc., Katherine" in result.output and "Version:   v1" in result.output

    # a broken edit is refused and the published version stays in force
    broken = tmp_path / "broken.j2"
    broken.write_text("{% extends '_layout.j2' %}{% block subject %}{{ nope }}{% endblock %}")
    result = runner.invoke(templates_app, ["publish", "welcome", "--file", str(broken)])
    assert result.exit_code == 1 and "not published" in result.output
    result = runner.invoke(templates_app, ["versions", "welcome"])
    assert "v1 ← in force" in result.output and "v2" not in result.output

    result = runner.invoke(templates_app, ["publish", "welcome", "--revert"])
    assert result.exit_code == 0
    with session_scope(email_db.factory) as s:
        from lifecycle.email.templates.versions import load_published
        assert load_published(s, ["welcome"]) == []


def test_send_test_sends_a_customers_rendering_marked_as_a_test(
    email_db: EmailDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    email_db.add_customer("cus_st", name="Dorothy Vaughan")
    _env(monkeypatch, TEMPLATES, email_db.url)
    result = runner.invoke(templates_app, ["send-test", "welcome", "--to", "mia@example.test",
                                           "--customer", "cus_st"])
    assert result.exit_code == 0, result.output
    assert "test of welcome (file) sent to mia@example.test via outbox" in result.output
    with email_db.factory() as s:
        [msg] = s.scalars(select(EmailMessage).where(EmailMessage.to_address == "mia@example.test")).all()
    assert msg.subject == "[TEST] Welcome aboard, Dorothy"
    assert msg.headers["X-Lifecycle-Test"] == "true" and msg.status == "sent"


def test_the_lifecycle_command_has_the_email_sub_apps(monkeypatch: pytest.MonkeyPatch) -> None:
    from starter.cli.app import app

    _env(monkeypatch, TEMPLATES)
    result = runner.invoke(app, ["templates", "check"])
    assert result.exit_code == 0 and "templates OK" in result.output
    for sub in ("outbox", "campaigns"):
        assert runner.invoke(app, [sub, "--help"]).exit_code == 0
