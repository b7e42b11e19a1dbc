"""Alerts: route incident events to people, render them per channel, deliver them durably."""
