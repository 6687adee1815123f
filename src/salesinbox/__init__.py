"""salesinbox: email sync and a Sales Inbox beside the CRM."""

__version__ = "0.1.0"
