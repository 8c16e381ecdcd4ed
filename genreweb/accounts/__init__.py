"""Accounts: sign-up (open, by invitation, or closed), invitations and the account page."""
