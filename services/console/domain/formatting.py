"""Numbers, percentages, dates and ages in the reader's locale and time zone (Babel's CLDR data)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_datetime, format_timedelta
from babel.numbers import format_decimal

DEFAULT_LOCALES = {"zh": "zh_Hans_CN", "en": "en_US"}


def pick_locale(language: str, accept_language: str | None) -> Locale:
    """The reader's first ``Accept-Language`` tag in the language shown (so an en-GB reader
    reading English gets British dates), else that language's default."""
    for part in (accept_language or "").split(","):
        tag = part.split(";")[0].strip()
        if not tag or tag == "*":
            continue
        try:
            locale = Locale.parse(tag, sep="-")
        except (UnknownLocaleError, ValueError):
            continue
        if locale.language == language:
            return locale
    return Locale.parse(DEFAULT_LOCALES[language])


def pick_zone(name: str | None, default: str) -> ZoneInfo:
    """The reader's IANA zone (sent by the browser), else the console's default."""
    for candidate in (name, default):
        if candidate:
            try:
                return ZoneInfo(candidate)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")


@dataclass(frozen=True)
class Formatter:
    locale: Locale
    zone: ZoneInfo

    @property
    def tag(self) -> str:
        """The BCP 47 tag of the locale, for ``<html lang>`` and the chart's own formatting."""
        return str(self.locale).replace("_", "-")

    def number(self, value: float | None, digits: int = 0) -> str:
        if value is None:
            return "–"
        pattern = "#,##0" + ("." + "0" * digits if digits else "")
        return format_decimal(value, format=pattern, locale=self.locale)

    def percent(self, value: float | None, digits: int = 1) -> str:
        """``value`` is already a percentage (0..100)."""
        if value is None:
            return "–"
        return self.number(value, digits) + "%"

    def signed(self, value: float | None, digits: int = 1, suffix: str = "") -> str:
        """A change: +3.2, −1.0 (with the minus sign), ±0."""
        if value is None:
            return "–"
        if round(value, digits) == 0:
            return "±" + self.number(0, digits) + suffix
        sign = "+" if value > 0 else "−"
        return sign + self.number(abs(value), digits) + suffix

    def moment(self, value: datetime | None) -> str:
        if value is None:
            return "–"
        return format_datetime(value, format="medium", tzinfo=self.zone, locale=self.locale)

    def day(self, value: date | None) -> str:
        if value is None:
            return "–"
        return format_date(value, format="medium", locale=self.locale)

    def age(self, since: datetime, now: datetime) -> str:
        """How long ago, in the largest sensible unit: "3 days", "3天"."""
        return format_timedelta(
            max(now - since, timedelta(0)), threshold=1, format="short", locale=self.locale
        )

    def local_date(self, value: datetime) -> date:
        return value.astimezone(self.zone).date()
