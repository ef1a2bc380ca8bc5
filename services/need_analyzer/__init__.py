"""need_analyzer: language, need, intent, sentiment, urgency and keywords of each issue."""
