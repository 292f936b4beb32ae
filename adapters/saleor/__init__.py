"""Saleor adapter: what KOM needs to be a Saleor app.

- ``jws``: verify ``Saleor-Signature`` (detached RS256 JWS) and Dashboard JWTs.
- ``manifest``: the app manifest and ``WEBHOOKS``, the table the web layer routes with.
- ``webhooks/*.graphql``: the subscription of each webhook; ``graphql/*.graphql``: what KOM asks.
- ``client``: ``SaleorClient``, the GraphQL calls of one installation.
- ``payloads``: webhook payload models and the refund-request rules.
- ``snapshot``: a Saleor order as the platform-neutral ``Order``.
- ``responses``: bodies for the sync transaction webhooks.

Modules are imported directly (``from adapters.saleor.jws import verify``) so a signature
check does not pull in gql.
"""
