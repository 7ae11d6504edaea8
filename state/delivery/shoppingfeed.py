"""Shoppingfeed requests for stock (INTEGRATIONS.md "Out"), as pure data.

The inventory update of the official SDK (shoppingflux/php-sdk): `PUT
/v1/catalog/{catalog_id}/inventory` with `{"inventory": [{"reference": sku, "quantity": atp}]}`, at most 100
references a request; ATP below zero is sent as 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

__all__ = ["INVENTORY_LIMIT", "inventory_puts"]

INVENTORY_LIMIT: Final = 100


def inventory_puts(atp: Mapping[str, int]) -> list[dict[str, Any]]:
    """Build the inventory `PUT` bodies, at most 100 references each."""
    rows = [{"reference": sku, "quantity": max(0, qty)} for sku, qty in atp.items()]
    return [{"inventory": rows[i : i + INVENTORY_LIMIT]} for i in range(0, len(rows), INVENTORY_LIMIT)]
