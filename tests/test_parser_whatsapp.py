"""WhatsApp chat export parser: every layout, placeholders in several languages, bad files."""

from __future__ import annotations

import datetime as dt
import zipfile
from pathlib import Path

import pytest

from ingest.parsers import whatsapp
from ingest.parsers.detect import detect_kind
from ingest.parsers.records import ConversationRecord, ExportError, IdentityRecord
from tests.builders.checks import check_contract, conversations, identities, messages, skipped
from tests.builders.whatsapp import LRM, NNBSP, build_whatsapp

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "samples" / "whatsapp"
needs_samples = pytest.mark.skipif(not SAMPLES.exists(), reason="shared samples are not available")


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)


def parse(path: Path, **options: object) -> list:
    return check_contract(whatsapp.parse(str(path), **options))


def chat(tmp_path: Path, *texts: str, sender: str = "Ann", **layout: object) -> list:
    lines = [(utc(2024, 1, 2, 10, i), sender, t) for i, t in enumerate(texts)]
    return parse(build_whatsapp(tmp_path / "WhatsApp Chat with Ann.txt", lines, **layout))


# --- Real and synthetic samples -------------------------------------------------------------------

CHAT_MINER = [
    "chat-miner_test_ddmmyy_24hrs.txt",
    "chat-miner_test_ios-bracket_mmddyy_24hrs.txt",
    "chat-miner_test_mmddyy_24hrs.txt",
    "chat-miner_test_mmddyyyy_12hrs.txt",
    "chat-miner_test_yyyymmdd_24hrs.txt",
]


@needs_samples
@pytest.mark.parametrize("name", CHAT_MINER)
def test_chat_miner_layouts_all_read_the_same(name: str) -> None:
    records = parse(SAMPLES / name)
    assert [i.display_name for i in identities(records)] == [
        "John Doe",
        "Jahn Doe",
        "John-John Doe",
        "John Doe 🤓",
        "🤓",
    ]
    assert [(m.sent_at, m.identity_id, m.text) for m in messages(records)] == [
        (utc(2019, 1, 1, 11, 25), "John Doe", "Lorem ipsum dolor sit amet."),
        (utc(2019, 1, 20, 11, 23), "John Doe", "."),
        (
            utc(2019, 1, 30, 20, 49),
            "Jahn Doe",
            "Lorem ipsum dolor sit amet,\nconsectetur adipiscing elit. Duis libero.",
        ),
        (utc(2020, 6, 10, 15, 55), "John-John Doe", "Lorem ipsum : dolor sit amet."),
        (utc(2021, 12, 10, 10, 10), "John Doe 🤓", "Lorem ipsum 🤓"),
        (utc(2021, 12, 20, 12, 10), "🤓", "Lorem ipsum 🤓"),
        (
            utc(2021, 12, 30, 22, 1),
            "John Doe",
            "Lorem ipsum dolor sit amet,\nconsectetur adipiscing elit. Duis libero.",
        ),
    ]
    assert skipped(records) == {"system": 2}  # created group, you were added


@needs_samples
def test_synthetic_ios_export_with_direction_marks() -> None:
    records = parse(SAMPLES / "synthetic_ios_24h_lrm.txt")
    assert [i.external_id for i in identities(records)] == ["Alice Example", "Bob", "Carol"]
    assert [(m.sent_at, m.identity_id, m.text) for m in messages(records)] == [
        (utc(2024, 1, 12, 9, 16, 40), "Alice Example", "Morning! Are we still on for Saturday? 🏔"),
        (
            utc(2024, 1, 12, 9, 17, 5),
            "Bob",
            "Yes.\nMeeting at the trailhead at 8.\n\n— bring water",
        ),
        (utc(2024, 1, 12, 9, 20), "Alice Example", "Time check: 10:30 works? Reply: yes/no"),
    ]
    # encryption notice, group created, missed call; image and <attached:>; Carol's deletion
    assert skipped(records) == {"system": 3, "media-only": 2, "deleted": 1}
    assert conversations(records)[0].is_group


@needs_samples
def test_synthetic_android_us_export_with_narrow_spaces() -> None:
    records = parse(SAMPLES / "synthetic_android_us_12h_nnbsp.txt")
    assert [(m.sent_at, m.identity_id, m.text) for m in messages(records)] == [
        (utc(2024, 1, 12, 9, 16), "Alice Example", "Morning! Are we still on for Saturday?"),
        (utc(2024, 1, 12, 9, 17), "Bob", "Yes.\nMeeting at the trailhead at 8."),
    ]
    # <Media omitted>, null (view once), file attached; deleted; encryption notice, Bob left
    assert skipped(records) == {"media-only": 3, "deleted": 1, "system": 2}
    assert conversations(records)[0].is_group is False


# --- Layouts -------------------------------------------------------------------------------------

LINES = [
    (utc(2023, 1, 2, 0, 5, 7), "Ann", "just after midnight"),
    (utc(2023, 2, 1, 12, 30, 8), "Ben", "noon-ish\nsecond line"),
    (utc(2023, 12, 31, 23, 59, 9), "Ann", "last one"),
]


@pytest.mark.parametrize("platform", ["android", "ios"])
@pytest.mark.parametrize("order", ["dmy", "mdy", "ymd"])
@pytest.mark.parametrize(("clock", "ampm"), [(24, "AM|PM"), (12, "AM|PM"), (12, "a. m.|p. m.")])
def test_every_layout_reads_the_same(
    tmp_path: Path, platform: str, order: str, clock: int, ampm: str
) -> None:
    path = build_whatsapp(
        tmp_path / "chat.txt", LINES, platform=platform, order=order, clock=clock, ampm=ampm
    )
    seconds = platform == "ios"  # Android exports have minutes only
    expected = [
        (w if seconds else w.replace(second=0), who, text) for w, who, text in LINES
    ]  # fmt: skip
    assert [(m.sent_at, m.identity_id, m.text) for m in messages(parse(path))] == expected


def test_ambiguous_dates_are_settled_by_chronology(tmp_path: Path) -> None:
    # 02/01 then 01/02: only day-first keeps time moving forward.
    lines = [(utc(2023, 1, 2, 9), "Ann", "first"), (utc(2023, 2, 1, 9), "Ann", "second")]
    path = build_whatsapp(tmp_path / "chat.txt", lines, order="dmy")
    assert [m.sent_at.date() for m in messages(parse(path))] == [
        dt.date(2023, 1, 2),
        dt.date(2023, 2, 1),
    ]
    path = build_whatsapp(tmp_path / "chat.txt", lines, order="mdy")
    assert [m.sent_at.date() for m in messages(parse(path))][1] == dt.date(2023, 2, 1)


def test_a_single_ambiguous_day_follows_the_clock_style(tmp_path: Path) -> None:
    lines = [(utc(2023, 3, 4, 9), "Ann", "hi")]
    us = build_whatsapp(tmp_path / "us.txt", lines, order="mdy", clock=12)
    eu = build_whatsapp(tmp_path / "eu.txt", lines, order="dmy", clock=24)
    assert messages(parse(us))[0].sent_at == utc(2023, 3, 4, 9)
    assert messages(parse(eu))[0].sent_at == utc(2023, 3, 4, 9)


def test_timezone_option_converts_local_times_to_utc(tmp_path: Path) -> None:
    [message] = messages(chat(tmp_path, "bonjour"))
    path = build_whatsapp(tmp_path / "c.txt", [(utc(2024, 7, 1, 10), "Ann", "bonjour")])
    [paris] = messages(parse(path, timezone="Europe/Paris"))
    assert paris.sent_at == utc(2024, 7, 1, 8)
    assert message.sent_at.tzinfo == dt.UTC


def test_a_bom_and_crlf_are_tolerated(tmp_path: Path) -> None:
    records = chat(tmp_path, "hello", bom=True, platform="ios")
    assert [m.text for m in messages(records)] == ["hello"]


# --- Message kinds ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "placeholder",
    [
        "<Media omitted>",
        "<Multimedia omitido>",
        "<Medien ausgeschlossen>",
        "<Médias omis>",
        "<Media weggelaten>",
        f"{LRM}image omitted",
        f"{LRM}video omitted",
        f"{LRM}sticker omitted",
        f"{LRM}GIF omitted",
        f"{LRM}imagen omitida",
        f"{LRM}Bild weggelassen",
        f"{LRM}<attached: 00000012-PHOTO-2024-01-12-09-18-30.jpg>",
        "IMG-20240113-WA0001.jpg (file attached)",
        "DOC-20240113-WA0002.pdf (archivo adjunto)",
        "null",
    ],
)
def test_media_placeholders_are_media_only(tmp_path: Path, placeholder: str) -> None:
    records = chat(tmp_path, placeholder, "words")
    assert skipped(records) == {"media-only": 1}
    assert [m.text for m in messages(records)] == ["words"]


def test_a_caption_under_an_attached_file_is_kept(tmp_path: Path) -> None:
    records = chat(tmp_path, "IMG-20240113-WA0001.jpg (file attached)\nlook at this view")
    assert [m.text for m in messages(records)] == ["look at this view"]


@pytest.mark.parametrize(
    "deleted",
    [
        "This message was deleted",
        f"{LRM}This message was deleted.",
        "You deleted this message",
        "Se eliminó este mensaje.",
        "Diese Nachricht wurde gelöscht.",
        "Ce message a été supprimé",
    ],
)
def test_deleted_messages_are_counted(tmp_path: Path, deleted: str) -> None:
    records = chat(tmp_path, deleted)
    assert skipped(records) == {"deleted": 1}
    assert messages(records) == []


def test_edited_marker_is_dropped(tmp_path: Path) -> None:
    records = chat(tmp_path, "see you at 8 <This message was edited>")
    assert [m.text for m in messages(records)] == ["see you at 8"]


def test_system_lines_are_skipped(tmp_path: Path) -> None:
    when = utc(2024, 1, 1, 9)
    lines = [
        (when, None, "Messages and calls are end-to-end encrypted."),
        (when, None, 'Ann changed the subject to "Plans: Saturday"'),
        (when, None, "Ben added Cat"),
        (when, "Ann", "hello"),
    ]
    for platform in ("android", "ios"):
        path = build_whatsapp(tmp_path / f"{platform}.txt", lines, platform=platform)
        records = parse(path)
        assert skipped(records) == {"system": 3}
        assert [i.external_id for i in identities(records)] == ["Ann"]


@pytest.mark.parametrize("platform", ["ios", "android"])
def test_notices_in_the_chat_s_name_without_their_mark_are_skipped(
    tmp_path: Path, platform: str
) -> None:
    """Some iOS exports lose the mark on the notices the chat "sends" itself."""
    when = utc(2024, 1, 1, 9)
    group = [
        (when, "Hiking Club", "Messages and calls are end-to-end encrypted. No one outside..."),
        (when, "Hiking Club", "Ann created group “Hiking Club”"),
        (when, "Hiking Club", "Ann changed this group’s icon"),
        (when, "Hiking Club", "Ben joined using this group’s invite link"),
        (when, "Ann", "Messages and calls are end-to-end encrypted, says the app"),  # a person
        (when, "Ben", "hello"),
    ]
    path = build_whatsapp(tmp_path / "WhatsApp Chat - Hiking Club.txt", group, platform=platform)
    records = parse(path)
    assert skipped(records) == {"system": 4}
    assert [i.external_id for i in identities(records)] == ["Ann", "Ben"]

    one_to_one = [
        (when, "Ann", "Messages and calls are end-to-end encrypted. No one outside..."),
        (when, "Ann", "Your security code with Ann changed. Tap to learn more."),
        (when, "Ann", "Missed voice call"),
        (when, "Ann", "I created group chats for both teams"),  # her words, not a notice
        (when, "Ann", "I changed the subject, sorry"),
    ]
    records = parse(build_whatsapp(tmp_path / "WhatsApp Chat - Ann.txt", one_to_one))
    assert skipped(records) == {"system": 3}
    assert [m.text for m in messages(records)] == [
        "I created group chats for both teams",
        "I changed the subject, sorry",
    ]


def test_names_lose_marks_and_the_non_contact_tilde(tmp_path: Path) -> None:
    when = utc(2024, 1, 1, 9)
    lines = [(when, f"~{NNBSP}Carol", "hi"), (when, f"{LRM}+1 (555) 000-0003", "yo")]
    records = parse(build_whatsapp(tmp_path / "c.txt", lines))
    assert [i.external_id for i in identities(records)] == ["Carol", "+1 (555) 000-0003"]


def test_title_comes_from_the_file_name(tmp_path: Path) -> None:
    records = chat(tmp_path, "hi")
    assert conversations(records) == [ConversationRecord("Ann", "Ann", is_group=False)]
    assert identities(records) == [IdentityRecord("Ann", "Ann")]


@pytest.mark.parametrize("platform", ["android", "ios"])
def test_zip_exports_with_media(tmp_path: Path, platform: str) -> None:
    lines = [(utc(2024, 1, 1, 9), "Ann", "hi"), (utc(2024, 1, 1, 9, 1), "Ben", "<Media omitted>")]
    path = build_whatsapp(tmp_path / "WhatsApp Chat - Hiking.zip", lines, platform=platform)
    records = parse(path)
    assert [m.text for m in messages(records)] == ["hi"]
    assert conversations(records)[0].title == "Hiking"


def test_ids_are_stable_when_a_re_export_starts_later(tmp_path: Path) -> None:
    when = utc(2024, 1, 1, 9)
    lines = [
        (when, "Ann", "a"),
        (when, "Ann", "b"),
        (when, "Ben", "c"),
        (utc(2024, 1, 2), "Ann", "d"),
    ]
    full = messages(parse(build_whatsapp(tmp_path / "Chat.txt", lines)))
    assert len({m.external_id for m in full}) == 4
    again = messages(parse(build_whatsapp(tmp_path / "Chat.txt", lines[2:])))
    assert [m.external_id for m in again] == [m.external_id for m in full[2:]]


# --- Bad files ---------------------------------------------------------------------------------


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "chat.txt"
    path.write_bytes("12/01/2024, 10:00 - Zoë: café\n".encode("latin-1"))
    with pytest.raises(ExportError) as error:
        parse(path)
    assert str(error.value) == "chat.txt is not UTF-8 text; export the chat again from WhatsApp."


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "chat.txt"
    path.write_text("\n\n")
    with pytest.raises(ExportError) as error:
        parse(path)
    assert str(error.value) == "chat.txt contains no messages."


def test_a_text_file_that_is_not_a_chat(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("shopping list\n12/01/2024, 10:00 - Ann: milk\n")
    with pytest.raises(ExportError) as error:
        parse(path)
    assert str(error.value) == (
        "notes.txt is not a WhatsApp chat export: its first line does not start with a date and "
        "time."
    )


def test_mixed_date_orders(tmp_path: Path) -> None:
    path = tmp_path / "chat.txt"
    path.write_text("13/01/2024, 10:00 - Ann: a\n01/13/2024, 10:00 - Ann: b\n")
    with pytest.raises(ExportError) as error:
        parse(path)
    assert str(error.value) == (
        "chat.txt mixes day-first and month-first dates, so its dates cannot be read."
    )


def test_zip_without_a_chat(tmp_path: Path) -> None:
    path = tmp_path / "photos.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("IMG-1.jpg", b"\xff\xd8")
    with pytest.raises(ExportError) as error:
        parse(path)
    assert str(error.value) == "photos.zip holds no WhatsApp chat (.txt) file."


def test_unknown_timezone(tmp_path: Path) -> None:
    path = build_whatsapp(tmp_path / "chat.txt", LINES)
    with pytest.raises(ExportError) as error:
        parse(path, timezone="Mars/Base")
    assert str(error.value) == "'Mars/Base' is not a time zone name joe knows."


# --- Layouts reported on other parsers' issue trackers --------------------------------------------


@pytest.mark.parametrize("platform", ["android", "ios"])
@pytest.mark.parametrize("locale", ["zh", "ja", "ko", "fr"])
def test_locales_with_a_marker_or_a_word_before_the_time(
    tmp_path: Path, locale: str, platform: str
) -> None:
    # Markers before the time: ChatLab/ChatLab#280 (上午|下午|午前|午後|오전|오후),
    # BrightspaceUI/intl#40 ("오전 1:28"); French "26/09/2019 à 22:39": JBGruber/rwhatsapp#8.
    lines = [
        (utc(2020, 1, 15, 0, 5), "민수", "just after midnight"),
        (utc(2020, 1, 15, 9, 5), "Ann", "morning"),
        (utc(2020, 1, 15, 12, 30), "민수", "lunch"),
        (utc(2020, 1, 15, 15, 21), "Ann", "afternoon"),
    ]
    path = build_whatsapp(tmp_path / "chat.txt", lines, platform=platform, locale=locale)
    assert [(m.sent_at, m.identity_id, m.text) for m in messages(parse(path))] == [
        (when.replace(second=0), who, text) for when, who, text in lines
    ]
    assert detect_kind(path) == "whatsapp"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "WhatsApp Chat with Ann.txt"
    path.write_text(text, encoding="utf-8")
    return path


def test_year_first_without_comma_and_no_space_after_the_colon(tmp_path: Path) -> None:
    # ChatLab/ChatLab#281: "[2026/7/9 02:28:09] Alice: Hey" / "[2026/7/9 02:28:37] Bob:Hi"
    path = write(tmp_path, "[2026/7/9 02:28:09] Alice: Hey\n[2026/7/9 02:28:37] Bob:Hi\n")
    assert [(m.sent_at, m.identity_id, m.text) for m in messages(parse(path))] == [
        (utc(2026, 7, 9, 2, 28, 9), "Alice", "Hey"),
        (utc(2026, 7, 9, 2, 28, 37), "Bob", "Hi"),
    ]


def test_dotted_markers_with_a_no_break_space_and_no_comma(tmp_path: Path) -> None:
    # Pustur/whatsapp-chat-parser#224: "20/6/2017 8:28 p. m." with a no-break space inside the
    # marker; hotosm/chatmap#211: "19/08/26 8:26 a. m." read as 2:26; joweich/chat-miner#24:
    # "[25/09/20 10:27:18 a.m.]" without a comma. (One file each: an export has one layout.)
    lines = [
        "20/6/2017 8:28 p.\u00a0m. - Michelle: test\n",
        "19/08/2026 8:26 a. m. - Don Rafael: ubicación: https://maps.example/?q=19.6,-99.1\n",
        "[25/09/2026 10:27:18 a.m.] Ann: hola\n",
    ]
    found = [messages(parse(write(tmp_path, line)))[0] for line in lines]
    assert [(m.sent_at, m.text) for m in found] == [
        (utc(2017, 6, 20, 20, 28), "test"),
        (utc(2026, 8, 19, 8, 26), "ubicación: https://maps.example/?q=19.6,-99.1"),
        (utc(2026, 9, 25, 10, 27, 18), "hola"),
    ]


def test_dots_in_the_time_and_no_comma(tmp_path: Path) -> None:
    # mtln/chat-export#28 (Indonesian): "30/08/25 18.00 - ..."
    path = write(tmp_path, "30/08/25 18.00 - Budi: halo\n30/08/25 18.01 - Sari: hai\n")
    assert [m.sent_at for m in messages(parse(path))] == [
        utc(2025, 8, 30, 18, 0),
        utc(2025, 8, 30, 18, 1),
    ]


def test_a_file_name_with_two_spaces_before_the_attached_note(tmp_path: Path) -> None:
    # hotosm/chatmap#211: "Name:IMG.jpg  (archivo adjunto)" followed by a caption line.
    path = write(
        tmp_path, "19/08/26 8:26 a. m. - Don Rafael:IMG-1.jpg  (archivo adjunto)\nPirul vereda.\n"
    )
    assert [m.text for m in messages(parse(path))] == ["Pirul vereda."]


def test_dashed_month_first_dates_in_brackets(tmp_path: Path) -> None:
    # gesiscss/WhatsR#32: "[01-29-2018, 23:33:00] Alice: Hello?"
    path = write(tmp_path, "[01-29-2018, 23:33:00] Alice: Hello?\n[01-29-2018, 23:45:01] Bob: Hi\n")
    assert [m.sent_at for m in messages(parse(path))] == [
        utc(2018, 1, 29, 23, 33),
        utc(2018, 1, 29, 23, 45, 1),
    ]


@pytest.mark.parametrize(
    "line",
    [
        "2024-03-05 18:00 train leaves",  # year first in a day-first export: read as ymd
        "1/20/24 5:00 pm landing",  # month first with a 12-hour clock in a day-first one
        "13/01/2024 10:00 ok?",  # the same date shape, but no dash after the time
    ],
)
def test_a_line_of_a_message_that_starts_with_a_date_stays_in_it(tmp_path: Path, line: str) -> None:
    path = tmp_path / "WhatsApp Chat with Ann.txt"
    path.write_text(
        f"13/01/2024, 09:16 - Ann: The plan:\n{line}\nsee you\n14/01/2024, 10:00 - Bob: ok\n"
    )

    records = parse(path)

    assert [(m.sent_at, m.identity_id, m.text) for m in messages(records)] == [
        (utc(2024, 1, 13, 9, 16), "Ann", f"The plan:\n{line}\nsee you"),
        (utc(2024, 1, 14, 10), "Bob", "ok"),
    ]
    assert not skipped(records)


def test_a_chat_written_in_eastern_arabic_digits_keeps_its_messages_apart(tmp_path: Path) -> None:
    """Every line's date has other digits; only its separators tell a layout (no message may
    swallow the next because "٢١" is not "٢٠")."""
    digits = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
    lines = [
        "20/01/2024, 10:30 - Bob: hi",
        "21/01/2024, 11:30 - Ali: hey",
        "22/01/2024, 12:30 - Bob: bye",
    ]
    path = write(tmp_path, "\n".join(line.translate(digits) for line in lines) + "\n")

    assert [(m.sent_at, m.text) for m in messages(parse(path))] == [
        (utc(2024, 1, 20, 10, 30), "hi"),
        (utc(2024, 1, 21, 11, 30), "hey"),
        (utc(2024, 1, 22, 12, 30), "bye"),
    ]


def test_an_impossible_date_is_reported_not_crashed_on(tmp_path: Path) -> None:
    path = write(tmp_path, "13/01/2024, 09:16 - Ann: hi\n31/02/2024, 10:00 - Bob: ok\n")
    with pytest.raises(ExportError, match="dated 31/02/2024 10:00"):
        parse(path)


def test_ids_do_not_change_with_the_zone_the_times_are_read_in(tmp_path: Path) -> None:
    """The zone (the site's TIME_ZONE, or --timezone) moves the times, not the ids: the same
    chat imported in another zone, or before the zone could be chosen, adds nothing."""
    import hashlib

    path = build_whatsapp(
        tmp_path / "WhatsApp Chat with Bo.txt", [(dt.datetime(2024, 1, 1, 9), "Al", "hi")]
    )
    [utc_read] = messages(parse(path))
    [berlin_read] = messages(parse(path, timezone="Europe/Berlin"))
    assert berlin_read.sent_at == utc(2024, 1, 1, 8)
    assert utc_read.external_id == berlin_read.external_id
    # The id every import made before: the time read as UTC.
    before = f"Bo|{utc(2024, 1, 1, 9).isoformat()}|Al|0".encode()
    assert utc_read.external_id == hashlib.sha1(before, usedforsecurity=False).hexdigest()[:20]


@pytest.mark.parametrize("suffix", [".txt", ".zip"])
def test_the_first_pass_reports_the_bytes_it_has_read(tmp_path: Path, suffix: str) -> None:
    """A big chat's page showed no numbers while the dates and senders were surveyed."""
    start = dt.datetime(2024, 1, 1, 9)
    lines = [
        (start + dt.timedelta(minutes=i), "Al" if i % 2 else "Bo", "x" * 40) for i in range(12_000)
    ]
    path = build_whatsapp(tmp_path / f"WhatsApp Chat with Bo{suffix}", lines)
    reports: list[tuple[str, int, int]] = []
    records = check_contract(
        whatsapp.parse(str(path), progress=lambda p: reports.append((p.unit, p.done, p.total)))
    )
    assert len(messages(records)) == 12_000
    first = [r for r in reports if r[0] == "bytes"]
    assert len(first) == 2  # every 5,000 messages of the survey
    assert 0 < first[0][1] < first[1][1] <= first[1][2]
    assert reports[: len(first)] == first  # then the messages, as before
    assert reports[-1] == ("messages", 12_000, 12_000)
