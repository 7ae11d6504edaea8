"""The deliverers: our decisions and stock out to Klaviyo, Braze and Shoppingfeed."""
