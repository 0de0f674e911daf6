{{ anime_companies_in_role('studio', 'studios') }}
