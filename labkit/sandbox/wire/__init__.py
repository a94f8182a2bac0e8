"""The sandbox on the wire: `http_server` (HTTPS on a thread, keep-alive), `tls` (its own CA and
certificate), `webhooks` (the webhook client: signing, retries, chaos), `sessions` (its keep-alive connections, lent
one request at a time).

May import: the foundations only.
"""
