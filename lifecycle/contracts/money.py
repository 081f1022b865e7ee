"""An amount of money as a customer reads it, in every email and page: ``$490``,
``$441.50``, ``€1,990``, ``¥5,000``, ``KWD 1.500``. Every amount names its currency (a
symbol only where it is unambiguous in English: ``$`` is the US dollar, ``CA$`` the
Canadian one); whole amounts drop the minor unit, so a price and an invoice read alike.

Amounts are Stripe's: integers in the currency's minor unit, by Stripe's table of
currencies ("zero-decimal" and "three-decimal" currencies, docs: Supported currencies),
which is not always ISO 4217's: ISK is zero-decimal but Stripe keeps it two-decimal in the
API (an amount always a multiple of 100). Formatting is Babel's (CLDR), in English.

Pure: workflow code uses it too. Babel reads its locale data from files on first use, so
that data is loaded when this module is imported (outside the workflow sandbox, which
passes this module through), never inside a workflow task.
"""

from decimal import Decimal

from babel import Locale
from babel.numbers import format_currency

LOCALE = Locale.parse("en_US")

# Stripe's zero-decimal currencies: the amount is in whole units (¥500 is 500)
ZERO_DECIMAL = frozenset({
    "bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv",
    "xaf", "xof", "xpf",
})
# Stripe's three-decimal currencies: the amount is in thousandths (1.500 KWD is 1500)
THREE_DECIMAL = frozenset({"bhd", "jod", "kwd", "omr", "tnd"})
# zero-decimal for people, two-decimal in Stripe's API (the last two digits always 00)
TWO_DECIMAL_IN_API_ONLY = frozenset({"isk"})


def minor_units(currency: str) -> int:
    """How many decimals Stripe's integer amounts carry in ``currency`` (0, 2 or 3)."""
    c = currency.lower()
    if c in ZERO_DECIMAL:
        return 0
    if c in THREE_DECIMAL:
        return 3
    return 2


def major_amount(amount: int, currency: str) -> Decimal:
    """Stripe's integer ``amount`` in the currency's major unit (cents → dollars, yen → yen)."""
    return Decimal(amount).scaleb(-minor_units(currency))


def money(cents: int, currency: str = "usd") -> str:
    """``cents``: Stripe's integer amount in the currency's minor unit (whatever it is)."""
    code = currency.upper()
    value = major_amount(cents, currency)
    shown = 0 if currency.lower() in TWO_DECIMAL_IN_API_ONLY else minor_units(currency)
    if value == value.to_integral_value():
        shown = 0  # whole amounts drop the minor unit: $490, not $490.00
    pattern = "¤#,##0" + ("." + "0" * shown if shown else "")
    text = format_currency(value, code, format=pattern, locale=LOCALE, currency_digits=False)
    if text.startswith(code):  # no symbol in English (KWD, CHF): "KWD 1.500", not "KWD1.500"
        text = f"{code} {text[len(code):]}"
    return text


def money_each(amounts: dict[str, int]) -> str:
    """Amounts in several currencies, never summed: ``$99 + €10`` (none: ``$0``)."""
    if not amounts:
        return money(0)
    return " + ".join(money(v, c) for c, v in sorted(amounts.items()))


money(1, "usd")  # load Babel's data now (see the module's docstring)
