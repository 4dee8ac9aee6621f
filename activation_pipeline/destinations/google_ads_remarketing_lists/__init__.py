"""Google Ads Remarketing Lists (Customer Match): settings, rules, client and fake server."""
