"""`stockguard gateway`: the webhooks of the shop's own systems into our input topics.

An aiohttp service (`app`) that verifies, maps (the pure mappers of
`stockguard.state.vendors`), dead-letters what cannot be mapped, and answers 2xx only
after Kafka acknowledged every record (`publisher`); dedup keys and the Shopify
inventory-item map live in `store`; Stripe line items come from `stripe_api`.
"""
