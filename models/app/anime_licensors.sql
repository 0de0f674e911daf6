{{ anime_companies_in_role('licensor', 'licensors') }}
