"""Playbooks: what each kind tells the team to do, what they list, and that vendor text stays inert."""

from __future__ import annotations

import logging
import os
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from watcher.alerts import playbook as pb
from watcher.alerts import prompt_library as pl  # the scan moved out of the playbook module
from watcher.alerts.model import Alternative
from watcher.alerts.playbook import BUDGET, KINDS, PlaybookFacts, neutralise, render_playbook
from watcher.alerts.slack_render import SECTION_LIMIT, markdown_to_mrkdwn

NOW = datetime(2026, 10, 14, 12, 47, tzinfo=UTC)  # 14:47 in Paris (CEST)

ALTERNATIVES = (
    Alternative("google", "Google Gemini", "degraded", "Elevated latency on Gemini API", 2400.0),
    Alternative("jasper", "Jasper", "outage", "Jasper app unavailable"),
    Alternative("mistral", "Mistral AI", "operational", "all components operational", None),
    Alternative("openai", "OpenAI", "operational", "listed by mistake: the affected vendor", 10.0),
    Alternative("anthropic", "Anthropic", "operational", "all components operational", 820.0),
    Alternative("perplexity", "Perplexity", "maintenance", "scheduled maintenance"),
)


def facts(**kw) -> PlaybookFacts:
    base = dict(
        vendor="openai",
        vendor_name="OpenAI",
        kind="outage",
        title="Elevated errors on ChatGPT",
        status="investigating",
        started_at=NOW - timedelta(minutes=42),
        components=("ChatGPT", "API"),
        used_for=("blog drafts", "ad copy variants"),
        alternatives=ALTERNATIVES,
        scheduled_for=NOW + timedelta(hours=3, minutes=13),
        scheduled_until=NOW + timedelta(hours=4, minutes=43),
        timezone="Europe/Paris",
    )
    base.update(kw)
    return PlaybookFacts(**base)


def render(f: PlaybookFacts | None = None, **kw) -> str:
    kw.setdefault("now", NOW)
    return render_playbook(f or facts(), **kw)


def section(text: str, heading: str) -> str:
    """The lines under a bold heading line, up to the next blank line."""
    start = text.index(heading)
    return text[start:].split("\n\n", 1)[0]


# -- each kind, each locale ----------------------------------------------------------------------

STEPS = {
    "en": {
        "outage": ["Stop retrying", "burns quota", "saved prompts", "Adapt before you generate", "postpone"],
        "degradation": ["Expect slowness", "Batch work", "Keep prompts short", "Raise timeouts"],
        "api_change": [
            "Freeze the automations that call OpenAI",
            "Zapier",
            "changelog",
            "Do not ship outputs from broken integrations",
        ],
        "hallucination_spike": [
            "Stop auto-publishing",
            "Fact-check every output",
            "Pull back what went out since 14:05 CEST",
        ],
        "maintenance": [
            "Schedule around the window",
            "Finish or queue",
            "Wed 14 Oct 18:00 → 19:30 CEST (starts in 3 h 13 min)",
        ],
    },
    "fr": {
        "outage": ["Arrêtez les relances", "griller vos quotas", "prompts enregistrés", "Adaptez avant de"],
        "degradation": [
            "Attendez-vous à des lenteurs",
            "Regroupez les demandes",
            "Raccourcissez les prompts",
        ],
        "api_change": ["Gelez les automatisations qui appellent OpenAI", "changelog", "intégration cassée"],
        "hallucination_spike": [
            "Coupez la publication automatique",
            "Vérifiez chaque contenu à la main",
            "depuis 14:05 CEST",
        ],
        "maintenance": [
            "Planifiez autour du créneau",
            "Terminez ou préparez avant le début",
            "mer. 14 oct. de 18:00 à 19:30 CEST (commence dans 3 h 13)",
        ],
    },
}


@pytest.mark.parametrize("locale", ["en", "fr"])
@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_renders_its_own_steps_in_each_locale(kind, locale):
    text = render(facts(kind=kind), locale=locale)
    for phrase in STEPS[locale][kind]:
        assert phrase in text, phrase
    for other in KINDS:
        if other != kind:  # the first step of every other kind is absent: the kinds really differ
            assert STEPS[locale][other][0] not in text
    assert "$" not in text  # every placeholder was filled
    assert "<!--" not in text and "-->" not in text  # the file's own documentation comment is not sent
    assert text.startswith("### ")
    assert "\n> " in text  # the client note is a quote
    assert "OpenAI" in section(text, "> ")


def test_french_playbook_is_in_french_with_24_hour_times():
    text = render(
        facts(started_at=datetime(2026, 10, 14, 19, 5, tzinfo=UTC)), locale="fr", now=NOW + timedelta(hours=7)
    )
    assert "est en panne : que faire maintenant" in text
    assert "**Ce qui est bloqué**" in text and "**Basculer vers**" in text
    assert "**Début :** 21:05 CEST (depuis 42 min)" in text
    assert "**Message aux clients / à l'équipe**" in text
    assert "what to do now" not in text and "Switch to" not in text


def test_locale_variants_map_to_french_and_unknown_locales_to_english():
    assert render(locale="fr_FR") == render(locale="fr")
    assert render(locale="FR-ca") == render(locale="fr")
    assert render(locale="de") == render(locale="en")
    assert render(locale="") == render(locale="en")


def test_unknown_kind_gets_the_outage_steps_under_a_generic_heading():
    text = render(facts(kind="volcano"))
    assert text.startswith("### ⚪ OpenAI incident: what to do now")
    assert "is down" not in text
    assert "Stop retrying" in text
    assert render(facts(kind="volcano"), locale="fr").startswith("### ⚪ Incident chez OpenAI : que faire")


# -- impact --------------------------------------------------------------------------------------


def test_impact_comes_first_with_used_for_components_and_since_in_team_zone():
    text = render()
    impact = section(text, "**What this blocks**")
    assert impact.splitlines()[1:] == ["- blog drafts", "- ad copy variants"]
    assert "**Affected:** ChatGPT, API" in text
    assert "**Since:** 14:05 CEST (for 42 min)" in text
    assert text.index("What this blocks") < text.index("Do now") < text.index("Switch to")


def test_since_shows_the_day_when_it_is_not_today_and_hours_for_long_incidents():
    text = render(facts(started_at=NOW - timedelta(days=1, hours=2, minutes=5), timezone="America/New_York"))
    assert "**Since:** Tue 13 Oct 06:42 EDT (for 1 d 2 h)" in text
    text = render(facts(started_at=NOW - timedelta(hours=1, minutes=12), timezone="UTC"))
    assert "**Since:** 11:35 UTC (for 1 h 12 min)" in text


def test_missing_start_and_components_are_said_plainly():
    text = render(facts(started_at=None, components=()))
    assert "**Since:** not stated by the vendor" in text
    assert "**Affected:** not stated by the vendor" in text


def test_impact_without_used_for_says_how_to_configure_it():
    text = render(facts(used_for=()))
    impact = section(text, "**What this blocks**")
    assert "Nobody has listed what the team uses OpenAI for" in impact
    assert "`[vendors.openai]`" in impact and "used_for" in impact
    fr = section(render(facts(used_for=()), locale="fr"), "**Ce qui est bloqué**")
    assert "vendors.openai" in fr and "Personne n'a encore indiqué" in fr


def test_a_long_used_for_list_is_capped_and_points_to_the_config():
    text = render(facts(used_for=tuple(f"campaign {i}" for i in range(20))))
    impact = section(text, "**What this blocks**").splitlines()[1:]
    assert len(impact) == 6
    assert impact[-1] == "- …and 15 more (see `vendors.openai.used_for`)"


def test_invalid_time_zone_falls_back_to_utc():
    assert "**Since:** 12:05 UTC (for 42 min)" in render(facts(timezone="Mars/Olympus_Mons"))


# -- maintenance window --------------------------------------------------------------------------


def test_maintenance_window_is_shown_in_the_team_zone_with_where_we_are_in_it():
    f = facts(kind="maintenance")
    assert "**Window:** Wed 14 Oct 18:00 → 19:30 CEST (starts in 3 h 13 min)" in render(f)
    assert "(in progress, ends in 30 min)" in render(f, now=NOW + timedelta(hours=4, minutes=13))
    assert "(window over)" in render(f, now=NOW + timedelta(hours=5))
    overnight = facts(kind="maintenance", scheduled_until=NOW + timedelta(hours=12))
    assert "**Window:** Wed 14 Oct 18:00 → Thu 15 Oct 02:47 CEST" in render(overnight)
    unknown = render(facts(kind="maintenance", scheduled_for=None, scheduled_until=None, started_at=None))
    assert "**Window:** time not announced yet" in unknown
    # the client note carries the window without the "starts in"
    assert "has planned maintenance (Wed 14 Oct 18:00 → 19:30 CEST)." in render(f)


def test_french_maintenance_window_reads_naturally():
    f = facts(kind="maintenance", scheduled_until=NOW + timedelta(hours=12))
    text = render(f, locale="fr")
    assert (
        "**Créneau :** du mer. 14 oct. à 18:00 au jeu. 15 oct. à 02:47 CEST (commence dans 3 h 13)" in text
    )


# -- alternatives ----------------------------------------------------------------------------------


def test_healthy_alternatives_operational_first_then_degraded_affected_vendor_excluded():
    lines = section(render(), "**Switch to**").splitlines()[1:]
    assert lines == [
        "- **Anthropic**: operational · 820 ms",
        "- **Mistral AI**: operational",
        "- **Google Gemini**: degraded, expect slowness · 2.4 s · Elevated latency on Gemini API",
    ]


def test_no_healthy_alternative_says_switch_to_manual_work():
    down = tuple(a for a in ALTERNATIVES if a.state not in ("operational", "degraded"))
    lines = section(render(facts(alternatives=down)), "**Switch to**").splitlines()[1:]
    assert lines == ["- No watched alternative is healthy right now: switch to manual work."]
    only_self = (Alternative("openai", "OpenAI", "operational"),)
    assert "switch to manual work" in render(facts(alternatives=only_self))
    assert "passez en mode manuel" in render(facts(alternatives=()), locale="fr")


def test_alternatives_are_capped_at_six_lines_fastest_first():
    many = tuple(Alternative(f"v{i}", f"Vendor {i}", "operational", "", 100.0 + i) for i in range(20))
    lines = section(render(facts(alternatives=many)), "**Switch to**").splitlines()[1:]
    assert len(lines) == 6
    assert lines[0] == "- **Vendor 0**: operational · 100 ms"
    assert lines[-1] == "- …and 15 more healthy"


def test_alternative_states_from_the_status_model_are_understood():
    alts = (
        Alternative("a", "A", "degraded_performance"),
        Alternative("b", "B", "unknown"),
        Alternative("c", "C", "major_outage"),
        Alternative("d", "D", "partial_outage"),
        Alternative("e", "E", "Operational", latency_ms=float("nan")),
    )
    lines = section(render(facts(alternatives=alts)), "**Switch to**").splitlines()[1:]
    assert lines == ["- **E**: operational", "- **A**: degraded, expect slowness"]


# -- saved prompts ---------------------------------------------------------------------------------


def write(path, text="x\n"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_prompt_library_lists_files_relevant_to_the_affected_tasks(tmp_path):
    lib = tmp_path / "prompts"
    write(lib / "blog" / "long-form_draft.md", "Turn an outline into a first draft\n")
    write(lib / "ad-copy.txt", "Five headline variants\n")
    write(lib / "misc" / "outline.md", "# Blog post from an outline\nmore text\n")
    write(lib / "social" / "linkedin.md", "LinkedIn captions\n")
    write(lib / "notes.pdf", "blog blog blog")
    write(lib / ".hidden" / "blog.md", "blog")
    text = render(prompt_library=lib)
    lines = section(text, "**Saved prompts for these tasks**").splitlines()[1:]
    assert lines == ["- `ad-copy.txt`", "- `blog/long-form_draft.md`", "- `misc/outline.md`"]


def test_prompt_library_without_a_match_lists_up_to_five_files(tmp_path):
    lib = tmp_path / "prompts"
    for i in range(8):
        write(lib / f"prompt-{i}.md", "Something else entirely\n")
    text = render(facts(used_for=("webinars",)), prompt_library=lib)
    lines = section(text, "**Saved prompts** (none named").splitlines()[1:]
    assert lines == [f"- `prompt-{i}.md`" for i in range(5)]


def test_prompt_library_missing_folder_is_said_and_no_library_omits_the_section(tmp_path):
    text = render(prompt_library=tmp_path / "nope")
    assert "prompt library folder is missing or unreadable" in text
    assert "alerts.prompt_library" in text
    assert "Saved prompts" not in render(prompt_library=None)
    a_file = write(tmp_path / "file.md")
    assert "missing or unreadable" in render(prompt_library=a_file)
    (tmp_path / "empty").mkdir()
    assert "no .md or .txt prompt yet" in render(prompt_library=tmp_path / "empty")


def test_prompt_library_symlinks_out_of_the_folder_are_not_followed(tmp_path, monkeypatch):
    outside = tmp_path / "outside"
    secret = write(outside / "blog-secret.md", "blog drafts for the board\n")
    write(outside / "sub" / "blog-inner.md", "blog\n")
    lib = tmp_path / "prompts"
    write(lib / "blog-ok.md", "blog\n")
    (lib / "blog-escape.md").symlink_to(secret)
    (lib / "blog-dir").symlink_to(outside / "sub", target_is_directory=True)
    (lib / "blog-alias.md").symlink_to(lib / "blog-ok.md")  # a link inside the folder is fine
    opened = []
    real_open = os.open
    monkeypatch.setattr(pl.os, "open", lambda p, *a, **k: opened.append(str(p)) or real_open(p, *a, **k))
    text = render(prompt_library=lib)
    assert "blog-escape" not in text and "blog-secret" not in text and "blog-inner" not in text
    assert "- `blog-ok.md`" in text and "- `blog-alias.md`" in text
    assert not any(str(outside) in p for p in opened)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs POSIX FIFOs")
def test_prompt_library_skips_fifos_without_blocking(tmp_path):
    lib = tmp_path / "prompts"
    write(lib / "blog.md", "blog\n")
    os.mkfifo(lib / "blog-pipe.md")
    text = render(prompt_library=lib)
    assert "- `blog.md`" in text and "blog-pipe" not in text


def test_prompt_library_scan_is_bounded(tmp_path, monkeypatch):
    lib = tmp_path / "prompts"
    lib.mkdir()
    for i in range(700):
        (lib / f"p{i:04d}.md").write_text("x")
    reads = []
    real = pl._first_line
    monkeypatch.setattr(pl, "_first_line", lambda p, b: reads.append(p) or real(p, b))
    render(prompt_library=lib)
    assert 0 < len(reads) <= pl.MAX_PROMPT_FILES_SCANNED


def test_prompt_library_reads_only_the_head_of_each_file(tmp_path, monkeypatch):
    lib = tmp_path / "prompts"
    write(lib / "big.md", "x" * 10_000 + "\nblog drafts\n")
    sizes = []
    real_read = os.read
    monkeypatch.setattr(pl.os, "read", lambda fd, n: sizes.append(n) or real_read(fd, n))
    text = render(prompt_library=lib)
    assert sizes and max(sizes) <= 200
    assert "(none named after these tasks" in text  # "blog drafts" sits past the first 200 bytes


def test_prompt_file_names_are_neutralised(tmp_path):
    lib = tmp_path / "prompts"
    write(lib / "blog `@here` [x](http:⁄⁄evil) *bold*.md", "blog\n")
    text = render(prompt_library=lib)
    line = next(li for li in text.splitlines() if "bold" in li)
    assert line.count("`") == 2 and "@here" not in line and "[x]" not in line and "*bold*" not in line


# -- overrides -------------------------------------------------------------------------------------


def test_vendor_override_beats_team_override_beats_shipped(tmp_path):
    overrides = tmp_path / "playbooks"
    assert "Stop retrying" in render(overrides_dir=overrides)  # no folder at all: shipped
    write(overrides / "en" / "outage.md", "<!-- team -->\n### Team outage plan for $vendor_name\n$impact\n")
    assert (
        render(overrides_dir=overrides)
        == "### Team outage plan for OpenAI\n- blog drafts\n- ad copy variants\n"
    )
    write(overrides / "en" / "openai" / "outage.md", "### OpenAI-only plan since $started\n")
    assert render(overrides_dir=overrides) == "### OpenAI-only plan since 14:05 CEST\n"
    # other vendors and other kinds are untouched
    assert render(facts(vendor="mistral", vendor_name="Mistral AI"), overrides_dir=overrides).startswith(
        "### Team outage plan for Mistral AI"
    )
    assert "Batch work" in render(facts(kind="degradation"), overrides_dir=overrides)
    # overrides are per locale
    assert "est en panne" in render(overrides_dir=overrides, locale="fr")


@pytest.mark.parametrize(
    "content",
    [
        "### Plan for $vendor_nam\n",  # unknown placeholder
        "### Costs $5 a month\n",  # stray $
        "### Unclosed ${vendor_name\n",
        b"### Caf\xe9 plan\n",  # Latin-1, not UTF-8
    ],
    ids=["unknown-placeholder", "stray-dollar", "unclosed-brace", "not-utf8"],
)
def test_broken_override_falls_back_to_the_shipped_playbook_with_a_warning(tmp_path, caplog, content):
    path = tmp_path / "en" / "outage.md"
    path.parent.mkdir(parents=True)
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with caplog.at_level(logging.WARNING, logger="watcher.alerts.playbook"):
        text = render(overrides_dir=tmp_path)
    assert text == render()
    assert len([r for r in caplog.records if str(path) in r.getMessage()]) == 1


def test_broken_vendor_override_falls_back_to_the_team_override(tmp_path, caplog):
    write(tmp_path / "en" / "outage.md", "### Team plan\n")
    write(tmp_path / "en" / "openai" / "outage.md", "### Broken $nope\n")
    with caplog.at_level(logging.WARNING):
        assert render(overrides_dir=tmp_path) == "### Team plan\n"
    assert "unknown placeholder $nope" in caplog.text


def test_override_that_is_not_a_file_or_too_big_is_skipped(tmp_path):
    (tmp_path / "en" / "outage.md").mkdir(parents=True)
    assert render(overrides_dir=tmp_path) == render()
    write(tmp_path / "en" / "openai" / "outage.md", "x" * (pb.MAX_TEMPLATE_BYTES + 1))
    assert render(overrides_dir=tmp_path) == render()


def test_override_may_use_a_literal_dollar_and_braced_placeholders(tmp_path):
    write(tmp_path / "fr" / "outage.md", "### ${vendor_name}: budget $$500 ($kind_label)\n")
    assert render(overrides_dir=tmp_path, locale="fr") == "### OpenAI: budget $500 (panne)\n"


def test_vendor_ids_that_are_not_plain_names_are_not_used_as_paths(tmp_path):
    write(tmp_path / "en" / "outage.md", "### Team plan\n")
    write(tmp_path / "elsewhere" / "outage.md", "### Escaped\n")
    assert render(facts(vendor="../elsewhere"), overrides_dir=tmp_path) == "### Team plan\n"
    assert render(facts(vendor="OpenAI/.."), overrides_dir=tmp_path) == "### Team plan\n"


# -- untrusted text --------------------------------------------------------------------------------

HOSTILE = (
    "Outage <!channel> @here <script>alert(1)</script> [click](http://evil)\n# heading\n> quote <@U123ABC>"
)
DANGEROUS = [
    "<!channel>",
    "<!",
    "<@",
    "@here",
    "@channel",
    "@everyone",
    "<script",
    "</script>",
    "[click]",
    "](",
    "\n# heading",
    "\n> quote",
    "<http",
]


def hostile_facts(kind="outage") -> PlaybookFacts:
    return facts(
        kind=kind,
        title=HOSTILE,
        vendor_name="Open<!here>AI @everyone",
        components=("API <@U999ZZZ>", "[x](javascript:alert(1))", "*bold* _it_ ~strike~ `code`"),
        used_for=("blog @channel drafts", "# not a heading"),
        alternatives=(
            Alternative("evil", "<!channel> Evil [x](http://evil)", "operational", "@here"),
            Alternative("slow", "Slow @everyone", "degraded", "<script>x</script> [y](http://evil)"),
        ),
    )


@pytest.mark.parametrize("locale", ["en", "fr"])
@pytest.mark.parametrize("kind", KINDS)
def test_hostile_vendor_text_is_neutralised_in_the_playbook(kind, locale):
    text = render(hostile_facts(kind), locale=locale)
    for bad in DANGEROUS:
        assert bad not in text, bad
    assert "<" not in text and ">" not in text.replace("\n> ", "\n")  # only our own quote marker
    # the words themselves are still there to read
    assert "Outage" in text and "alert(1)" in text and "heading" in text
    # no line that a vendor started: every line is ours
    assert not any(line.startswith(("# ", "> quote", "- #")) for line in text.splitlines())


@pytest.mark.parametrize("locale", ["en", "fr"])
@pytest.mark.parametrize("kind", KINDS)
def test_playbook_through_slack_mrkdwn_has_no_mention_or_link(kind, locale, tmp_path):
    lib = tmp_path / "prompts"
    write(lib / "<!channel> blog.md", "blog\n")
    write(lib / "[x](http:⁄⁄evil) blog.md", "blog\n")
    mrkdwn = markdown_to_mrkdwn(render(hostile_facts(kind), locale=locale, prompt_library=lib))
    assert "<!" not in mrkdwn
    assert "<@" not in mrkdwn
    assert "<http" not in mrkdwn and "|" not in mrkdwn
    assert "&lt;" not in mrkdwn  # nothing needed escaping: neutralise already made it inert


# -- size -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("locale", ["en", "fr"])
@pytest.mark.parametrize("kind", KINDS)
def test_rendered_playbook_stays_under_the_budget_with_huge_inputs(kind, locale, tmp_path):
    lib = tmp_path / "prompts"
    for i in range(40):
        write(
            lib / f"blog-drafts-ad-copy-social-captions-variant-number-{i:03d}-with-a-long-name.md", "blog\n"
        )
    big = facts(
        kind=kind,
        vendor_name="A Vendor With A Really Quite Remarkably Long Display Name Indeed, Inc.",
        title="Elevated error rates & timeouts " * 40,
        components=tuple(f"Component number {i} with a long name" for i in range(100)),
        used_for=tuple(f"blog drafts for campaign {i} with a very long description of it" for i in range(30)),
        alternatives=tuple(
            Alternative(f"v{i}", f"Alternative vendor {i} with a long name", state, "reason " * 40, 1234.5)
            for i in range(60)
            for state in ("operational", "degraded")
        ),
    )
    text = render(big, locale=locale, prompt_library=lib)
    assert len(text) <= BUDGET
    assert len(markdown_to_mrkdwn(text)) <= SECTION_LIMIT
    assert "**" in text and "\n> " in text  # still a whole playbook, only the lists shrank


@pytest.mark.parametrize("locale", ["en", "fr"])
@pytest.mark.parametrize("kind", KINDS)
def test_ordinary_playbook_keeps_the_full_lists(kind, locale):
    assert len(render(facts(kind=kind), locale=locale)) <= BUDGET
    assert "Google Gemini" in render(facts(kind=kind), locale=locale)  # the degraded one, with its reason


# -- neutralise --------------------------------------------------------------------------------------


def test_neutralise_examples():
    assert neutralise("Elevated errors on GPT-4o") == "Elevated errors on GPT-4o"
    assert neutralise("  two\n\nlines\r\n\tand\u2028more ") == "two lines and more"
    assert neutralise("<!channel> hi") == "‹!channel› hi"
    assert neutralise("ping @here and @Everyone") == "ping ＠here and ＠Everyone"
    assert neutralise("write to support@openai.com") == "write to support@openai.com"
    assert neutralise("[click](http://evil)") == "(click)(http://evil)"
    assert neutralise("see https://status.openai.com") == "see https://status.openai.com"
    assert neutralise("# heading") == "＃ heading"
    assert neutralise("- item") == "‐ item"
    assert neutralise("1. first") == "1． first"
    assert neutralise("gpt_4o_mini and _italic_ and __bold__") == "gpt_4o_mini and ˍitalicˍ and ˍˍboldˍˍ"
    assert neutralise("*b* ~s~ `c` \\x") == "∗b∗ ∼s∼ ‘c‘ ⧵x"
    assert neutralise("zero\u200bwidth\u202eltr\x00nul") == "zerowidthltrnul"
    assert neutralise(None) == ""  # type: ignore[arg-type]
    assert neutralise(42) == "42"  # type: ignore[arg-type]
    long = neutralise("word " * 300)
    assert len(long) == 500 and long.endswith("word…")
    assert neutralise("abcdef", limit=4) == "abc…"


FRAGMENTS = st.sampled_from(
    [
        "<!channel>",
        "<!here>",
        "<@U123ABC>",
        "<#C1>",
        "@channel",
        "@here",
        "@everyone",
        "@",
        "<script>",
        "</a>",
        "[x](http://evil)",
        "](",
        "\n# ",
        "\n> ",
        "\n- ",
        "```",
        "`",
        "*",
        "_",
        "~",
        "\\",
        "<http://x|y>",
        "\u200b",
        "\u202e",
        "\x00",
        "\r\n",
        "1. ",
        "a",
        " ",
        "&lt;",
    ]
)
HOSTILE_TEXT = st.lists(st.one_of(FRAGMENTS, st.text(max_size=20)), max_size=40).map("".join)


@given(HOSTILE_TEXT)
def test_neutralise_output_is_always_inert_and_idempotent(text):
    out = neutralise(text)
    assert len(out) <= 500
    for bad in ("<", ">", "[", "]", "`", "*", "~", "\\", "\n", "\r", "\x00", "\u200b", "\u202e"):
        assert bad not in out
    low = out.lower()
    assert "@channel" not in low and "@here" not in low and "@everyone" not in low
    assert not re.match(r"[#>\-+=]|\d+[.)](\s|$)", out)
    assert out == out.strip()
    assert neutralise(out) == out
    mrkdwn = markdown_to_mrkdwn(f"- **Title:** {out}")
    assert "<" not in mrkdwn and "&lt;" not in mrkdwn


@given(st.text(max_size=3000), st.integers(min_value=1, max_value=600))
def test_neutralise_respects_any_limit(text, limit):
    out = neutralise(text, limit=limit)
    assert len(out) <= limit
    assert neutralise(out, limit=limit) == out


def test_facts_are_frozen():
    f = facts()
    with pytest.raises(AttributeError):
        f.title = "x"  # type: ignore[misc]
    assert replace(f, title="y").title == "y"
