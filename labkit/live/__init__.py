"""How the lab meets a real Vonage account: the public URL (`tunnel`: PUBLIC_URL or a pyngrok agent), the
application and number that follow the lab (`account`; the number, moved only with consent, in
`number_link`; what the lab changed, saved to be put back, in `saved`), and whether Vonage can fetch what
the lab serves (`reach`).

May import: the foundations (labkit.errors, labkit.config, ...). Never the sandbox (the sandbox is a
stand-in for the account, and the two share only the foundations), the server, the lab or anything above.
"""
