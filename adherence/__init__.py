"""Adherence: a real-time schedule-adherence engine for Twilio Flex."""

__version__ = "0.1.0"
