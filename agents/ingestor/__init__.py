"""The ingestor: validates, de-duplicates and enriches client submissions; runs the market feed."""
