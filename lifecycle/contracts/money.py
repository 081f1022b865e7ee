"""An amount of money as a customer reads it, in every email and page: ``$490``,
``$441.50``, ``$1,990``; other currencies ``490 EUR``. Whole amounts drop the cents, so a
price and an invoice read alike. Pure: workflow code uses it too."""


def money(cents: int, currency: str = "usd") -> str:
    amount = f"{cents / 100:,.0f}" if cents % 100 == 0 else f"{cents / 100:,.2f}"
    return f"${amount}" if currency.lower() == "usd" else f"{amount} {currency.upper()}"
